"""Sweeps: YAML search spaces (space.py) run as Ray Tune trials tracked in MLflow."""
