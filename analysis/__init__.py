"""MLflow runs -> pandas -> Pareto frontiers and hypervolume -> figures and tables (analysis issue)."""
