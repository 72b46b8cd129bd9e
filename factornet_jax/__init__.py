"""FactorNet rebuilt on JAX/Flax: TF binding prediction from DNA sequence and chromatin
accessibility, trained and run from chunked on-disk Zarr stores."""

__version__ = "0.1.0"

__all__ = ["open_cell_store", "open_genome_store", "load_model", "FactorNetError", "__version__"]


def __getattr__(name):
    # Lazy: `import factornet_jax` must not pull in jax for a `--help` or a store read.
    if name in ("open_cell_store", "open_genome_store"):
        from factornet_jax import reader
        return getattr(reader, name)
    if name == "load_model":
        from factornet_jax.modeldir import load_model
        return load_model
    if name == "FactorNetError":
        from factornet_jax.errors import FactorNetError
        return FactorNetError
    raise AttributeError(f"module 'factornet_jax' has no attribute {name!r}")
