"""The files of a search's results folder (``ray_results/NAME``) beside Tune's own."""

from __future__ import annotations

SEARCH_CONFIG = "search_config.json"  # the search's config, so `analysis.report FOLDER` needs no MLflow
SEARCH_SUMMARY = "search_summary.json"  # contract.summary.SearchSummary, written when the search ends
BEST_CONFIG = "best_config.yaml"  # the recommended trial's training config: `trainables.train --config` takes it
STUDY_DB = "optuna.db"  # the Optuna study (sqlite)
PENDING_WRITES = "mlflow_pending.json"  # MLflow writes that could not be delivered
REPORT_DIR = "report"  # the report that search.run writes at the end
