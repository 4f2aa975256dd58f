"""The files of a search's results folder (``ray_results/NAME``) beside Tune's own."""

from __future__ import annotations

SEARCH_ID = "search_id"  # the search's id (one line), made when it starts; only --resume reuses it
SEARCH_CONFIG = "search_config.json"  # the search's config: what --resume runs, and `analysis.report FOLDER` reads
SEARCH_SUMMARY = "search_summary.json"  # contract.summary.SearchSummary, written when the search ends
# The recommended schedule where it is a population member's (search.mode pbt or pb2), and each member's on its run:
# `trainables.train --schedule` replays it.
SCHEDULE_FILE = "schedule.json"
BEST_CONFIG = "best_config.yaml"  # the recommended trial's training config: `trainables.train --config` takes it
STUDY_JOURNAL = "optuna.journal"  # the Optuna study (a journal file), in the driver's local folder
STUDY_DB = "optuna.db"  # the study as a search of an earlier t2t-search kept it (SQLite): read by --resume
PENDING_WRITES = "mlflow_pending.jsonl"  # MLflow writes not yet delivered (search.tracking.pending), local folder
PENDING_WRITES_LIST = "mlflow_pending.json"  # what searches before that file left undelivered at their end
LOCAL_STATE_ROOT = ".t2t-search"  # the driver's local folders of searches whose results are remote (s3://...)
REPORT_DIR = "report"  # the report that search.run writes at the end
FINAL_EXPERIMENT = "final"  # the final phase's Tune experiment, a folder inside the search's results folder
