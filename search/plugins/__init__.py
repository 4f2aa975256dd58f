"""Tune plug-ins on Tune's public API: progress, history files, the disk guard, resources and the scheduler."""
