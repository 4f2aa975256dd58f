"""Cluster tools: check a cluster YAML offline, run the head's MLflow server, check that every node sees the storage.

    python -m search.cluster check cluster.yaml cluster.local.yaml    # Ray's own validation + the security lint
    python -m search.cluster mlflow-server --backend-store-uri sqlite:///$HOME/mlflow/mlflow.db \\
        --artifacts-destination s3://bucket/mlflow          # basic auth, loopback, started once (idempotent)

    lint           the offline check of a cluster YAML (``check``)
    mlflow_server  the head's tracking server (``mlflow-server``)
    storage        every node sees the storage path (``search.run --address``)
"""
