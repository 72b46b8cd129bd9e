"""`python -m preprocess build ...` is `factornet preprocess build ...`."""
import sys

from factornet_jax.cli import main

main(["preprocess", *sys.argv[1:]])
