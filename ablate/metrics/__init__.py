"""Measures of a trial: quality (classifier, FID family) and cost."""
