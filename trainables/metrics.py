"""Metric names and trial statuses, defined once for the trainable, the search and the reports."""

from __future__ import annotations

EPOCH = "epoch"
TRAIN_LOSS = "train_loss"
VAL_LOSS = "val_loss"
VAL_ACC = "val_acc"  # top-1, a fraction in [0, 1]
VAL_ACC5 = "val_acc5"  # top-5, where the data set has at least 5 classes
BEST_VAL_ACC = "best_val_acc"
LR = "lr"
EPOCH_TIME_S = "epoch_time_s"
IMAGES_PER_S = "images_per_s"
PARAMS = "params"
MACS = "macs"
STATUS = "status"
REASON = "reason"  # why a run diverged or failed
BASELINE_TAG = "search.baseline"  # "true" on the run of the trial that trained the base config's values

# What the search optimises, and in which direction.
OBJECTIVE = VAL_ACC
OBJECTIVE_MODE = "max"

# A run's status, as reported by the trainable and tagged on its MLflow run.
RUNNING = "running"
COMPLETED = "completed"
PRUNED = "pruned"
FAILED = "failed"
DIVERGED = "diverged"
INTERRUPTED = "interrupted"  # stopped by Ctrl-C; a --resume reopens the run
STATUSES = (RUNNING, COMPLETED, PRUNED, FAILED, DIVERGED, INTERRUPTED)
