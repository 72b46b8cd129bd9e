"""`python -m preprocess build ...`: the offline store-building stage (from a checkout; not
installed, an installed copy runs `factornet preprocess build ...`)."""
