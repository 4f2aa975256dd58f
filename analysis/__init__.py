"""Reports of a search: load (MLflow or a Tune folder) -> summarize (plain data) -> plot and render."""
