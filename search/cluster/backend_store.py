"""The MLflow server's backend store: sqlite on the head (the default) or PostgreSQL for teams, checked before the
server starts so a wrong URI is one line, not a traceback in the server's log."""

from __future__ import annotations

import importlib.util
from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg")
DRIVER = "psycopg"  # SQLAlchemy 2.1's driver for postgresql:// URIs, MLflow's store's (pyproject's [postgres] extra)


def check_backend_store(uri: str) -> None:
    """Raise ``ValueError`` naming the rule and the fix for a PostgreSQL URI that cannot work or leaks its password
    (a password in the URI shows in ``ps`` and in the server's log: libpq reads ``~/.pgpass`` or ``PGPASSWORD``)."""
    parts = urlsplit(uri)
    if parts.scheme not in POSTGRES_SCHEMES:
        return
    shown = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    if parts.password:
        raise ValueError(
            f"--backend-store-uri {shown}: the URI must not carry the database password; put it in ~/.pgpass "
            "(host:port:database:user:password, mode 600) or PGPASSWORD and drop it from the URI"
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise ValueError(
            f"--backend-store-uri {shown}: a PostgreSQL store needs a host and a database, "
            "e.g. postgresql://mlflow@127.0.0.1:5432/mlflow"
        )
    if importlib.util.find_spec(DRIVER) is None:
        raise ValueError(
            f"--backend-store-uri {shown}: PostgreSQL needs the {DRIVER} driver; install it with "
            "pip install -e '.[postgres]'"
        )
