"""``python -m search.deliver --name NAME``: deliver the MLflow writes a search left undelivered.

A search whose tracking store was away when it ended keeps those writes in its local folder
(``mlflow_pending.jsonl``, ``search.tracking.pending``); a ``--resume`` delivers them too, but a finished search is not
resumed.
"""

from __future__ import annotations

import sys

from contract.cli import Parser
from contract.files import PENDING_WRITES
from contract.redact import redact
from search.experiment.identity import LockedError, SearchIdentity, SearchLock, saved_config
from search.experiment.search_config import SearchConfig
from search.tracking.pending import PendingWrites
from search.tracking.tracker import MlflowTracker


def main(argv: list[str] | None = None) -> int:
    """``python -m search.deliver``: the exit code (0 delivered or nothing left, 2 bad input, 1 still undelivered)."""
    parser = Parser(prog="python -m search.deliver", description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="the search (its results folder's name)")
    parser.add_argument("--storage-path", help="where its results are (as given to search.run)")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="how long to keep trying")
    args = parser.parse_args(argv)
    cfg = SearchConfig.load(None, [], name=args.name, storage_path=args.storage_path)
    saved = saved_config(cfg.experiment_path)
    identity = SearchIdentity.find(cfg.experiment_path, cfg.local_experiment_dir) if saved else None
    if identity is None:
        print(f"error: no search at {redact(cfg.experiment_path)} (check --name and --storage-path)", file=sys.stderr)
        return 2
    pending = identity.local_dir / PENDING_WRITES
    if not PendingWrites(str(pending)).exists():
        print(f"search {args.name!r}: nothing left to deliver")
        return 0
    try:
        lock = SearchLock(cfg.experiment_path).acquire()
    except LockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    uri = SearchConfig.model_validate({**saved, "storage_path": cfg.storage_path}).resolved_tracking_uri
    tracker = MlflowTracker(uri, args.name, identity.search_id, str(pending)).open()
    tracker.close(timeout_s=args.timeout_s)
    lock.release()
    if tracker.pending():
        print(f"error: MLflow at {redact(uri)} did not take the writes; they stay in {pending}", file=sys.stderr)
        return 1
    print(f"search {args.name!r}: undelivered MLflow writes delivered to {redact(uri)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
