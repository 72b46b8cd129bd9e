"""`python -m train run ...` is `factornet train run ...`; `python -m train NAME ...` runs it with
FactorNet's published settings for one model type (train/presets/NAME.json: multiTask,
onePeak, meta, GENCODE, metaGENCODE), your flags after them and winning; `python -m train
list` shows them."""
import sys
from pathlib import Path

from factornet_jax.cli import run_stage

run_stage(["train", "run"], Path(__file__).resolve().parent / "presets", sys.argv[1:])
