"""MLflow tracking: the runs of a search, their writes and delivery, the Tune callback and the model registry."""
