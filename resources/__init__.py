"""The reference files FactorNet shipped (README.md); installed as factornet_jax.resources and
found through factornet_jax.reference_files."""
