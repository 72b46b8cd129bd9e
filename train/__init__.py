"""`python -m train run ...`: the training stage (from a checkout; not installed, an installed
copy runs `factornet train run ...`)."""
