"""`python -m train run ...`: the training stage."""
