"""The life of a search: its config, the checks before Ray starts, its identity and lock, signals, resume, the final
phase and the results."""
