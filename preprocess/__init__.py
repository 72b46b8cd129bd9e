"""`python -m preprocess build ...`: the offline store-building stage."""
