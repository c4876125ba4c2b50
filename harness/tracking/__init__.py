"""Tracking: the run directory's MLflow record, the tracker, `harness sync` and the one MLflow gateway."""
