"""`python -m train run ...` is `factornet train run ...`."""
import sys

from factornet_jax.cli import main

main(["train", *sys.argv[1:]])
