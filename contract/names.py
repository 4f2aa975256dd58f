"""Error messages that name the value and suggest what was meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when something close exists, else an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""
