"""The Optuna study behind Tune: the searcher, the search space and the study's storage."""
