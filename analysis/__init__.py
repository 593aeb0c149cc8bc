"""MLflow runs -> pandas -> Pareto frontiers and hypervolume -> figures and tables (the flow's last arrow).

runs.py loads, pareto.py decides, figures.py and tables.py draw and print, report.py does all of it
for `python -m ablate report` (`from analysis.report import report`).
"""

from analysis.pareto import hypervolume_2d, pareto_front, pareto_mask
from analysis.runs import load_runs

__all__ = ["hypervolume_2d", "load_runs", "pareto_front", "pareto_mask"]
