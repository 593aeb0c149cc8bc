"""Studies: one YAML per question (studies/NAME.yaml), answered and checked by `python -m ablate study`."""
