"""MLflow layout of a sweep: one experiment per sweep name, a parent run per invocation, a child
run per trial (tag mlflow.parentRunId), written by one process only (the sweep's driver)."""
