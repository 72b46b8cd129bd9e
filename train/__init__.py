"""The training stage of a checkout (not installed; an installed copy runs `factornet train run`):
`python -m train run ...`, or `python -m train NAME ...` with one of FactorNet's published
model-type settings in presets/ (`python -m train list`)."""
