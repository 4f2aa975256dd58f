"""Which trial is best: the one rule behind the search's summary, its MLflow tags and the report."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from contract.metrics import BEST_VAL_ACC, MACS, STATUS
from contract.status import COMPLETED, PRUNED

# A diverged or failed trial is never recommended; a completed one beats any pruned one (its number is final).
CANDIDATE_ORDER = (COMPLETED, PRUNED)

Row = TypeVar("Row", bound=Mapping[str, Any])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def is_candidate(row: Mapping[str, Any]) -> bool:
    """Whether a trial may be the best: a status that ranks and a best val_acc."""
    return row.get(STATUS) in CANDIDATE_ORDER and _number(row.get(BEST_VAL_ACC)) is not None


def rank_key(row: Mapping[str, Any]) -> tuple[int, float, float]:
    """Sort key of a candidate: completed first, then higher best val_acc, then fewer MACs."""
    macs = _number(row.get(MACS))
    return CANDIDATE_ORDER.index(row[STATUS]), -float(row[BEST_VAL_ACC]), math.inf if macs is None else macs


def ranked(rows: Iterable[Row]) -> list[Row]:
    """The candidates among ``rows`` (mappings with status, best_val_acc and macs), best first."""
    return sorted((r for r in rows if is_candidate(r)), key=rank_key)


def best(rows: Iterable[Row]) -> Row | None:
    """The first of ``ranked``, or None."""
    order = ranked(rows)
    return order[0] if order else None
