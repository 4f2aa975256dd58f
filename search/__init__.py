"""The search: Ray Tune schedules, Optuna proposes, MLflow records. Entry point: ``python -m search.run``."""
