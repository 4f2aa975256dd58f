"""The driver's local files: SQLite written ahead, and writes beside the folder Tune uploads."""
