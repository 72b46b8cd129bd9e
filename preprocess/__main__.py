"""`python -m preprocess build ...` is `factornet preprocess build ...`; `python -m preprocess
dream-hg19 -i data/* --genome hg19.fa` builds the ENCODE-DREAM stores with FactorNet's hg19
blacklist and GENCODE annotations (preprocess/recipes/dream-hg19.json); `python -m preprocess
list` shows the recipes."""
import sys
from pathlib import Path

from factornet_jax.cli import run_stage

run_stage(["preprocess", "build"], Path(__file__).resolve().parent / "recipes", sys.argv[1:])
