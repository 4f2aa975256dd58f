"""The records of a search, defined once: what the trainable reports, the search writes and the reports read.

Every layer may import this package (t2t, trainables, search, analysis, benchmarks, tests); it imports nothing
but the standard library, so importing it costs nothing and pulls in no framework.

    metrics   metric names and the objective
    status    trial statuses and the rule that gives a finished trial its status
    ranking   which trial is best
    tracking  MLflow: the default store, tag names, run roles
    files     the file names of a search's results folder
    summary   the search summary (``search_summary.json``, the parent run's metrics and tags)
    schedule  the configurations a run's weights trained with, epoch by epoch (schedule.json)
    flat      nested config -> dotted keys
    names     "did you mean" suggestions in error messages
    cli       the command-line parser the entry points share
    redact    credentials masked in URIs (params, tags, logs)
"""
