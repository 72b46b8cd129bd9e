from factornet_jax.cli import main

main()
