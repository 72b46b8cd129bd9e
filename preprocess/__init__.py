"""The offline store-building stage of a checkout (not installed; an installed copy runs
`factornet preprocess build`): `python -m preprocess build ...`, or `python -m preprocess NAME
...` with a recipe in recipes/, e.g. dream-hg19 (`python -m preprocess list`)."""
