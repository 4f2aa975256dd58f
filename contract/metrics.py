"""Metric names, defined once for the trainable, the search and the reports."""

from __future__ import annotations

EPOCH = "epoch"
TRAIN_LOSS = "train_loss"
VAL_LOSS = "val_loss"
VAL_ACC = "val_acc"  # top-1, a fraction in [0, 1]
VAL_ACC5 = "val_acc5"  # top-5, where the data set has at least 5 classes
BEST_VAL_ACC = "best_val_acc"
# The held-out test split, measured once at the end of a final-phase run (train.evaluate_test) and nowhere else:
# no number from it reaches the scheduler or the searcher.
TEST_LOSS = "test_loss"
TEST_ACC = "test_acc"
TEST_ACC5 = "test_acc5"
# A final run's per-image top-1 hits on its final split (test, or val without one), at its last epoch: a string,
# contract.hits.encode, from which the gain's interval adds the images' own sampling error.
FINAL_HITS = "final_hits"
LR = "lr"
EPOCH_TIME_S = "epoch_time_s"
IMAGES_PER_S = "images_per_s"
PARAMS = "params"
MACS = "macs"
STATUS = "status"  # a result's status (see contract.status), also the MLflow tag of a run's final status
REASON = "reason"  # why a run diverged or failed
# A trial process's first result: the splits it trains and is measured on, as JSON (trainables.dataset_record), which
# the driver logs as the run's MLflow data set inputs.
DATASETS = "datasets"
# The schedule of the weights a trial process trains (contract.schedule), as JSON, in its first result and in the
# first after a restore: where the weights started and each later change of configuration (a population member that
# copied another, a run resumed with other values).
SCHEDULE = "schedule"
# A population member's per-epoch metrics of each mutable value: ``hp/optim.lr`` ... (search.population).
HP_PREFIX = "hp/"
# A trial's GPUs over an epoch, from its process (trainables.telemetry): the mean busy share of its GPUs, and the most
# memory one of them held. Beside MLflow's per-GPU system/gpu_N_* metrics, which the UI charts.
GPU_UTILIZATION = "system/gpu_utilization_percentage"
GPU_MEMORY_PEAK = "system/gpu_memory_peak_megabytes"

# What the search optimises, and in which direction.
OBJECTIVE = VAL_ACC
OBJECTIVE_MODE = "max"
