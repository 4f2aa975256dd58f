"""A population member's lineage: the schedule its weights went through, read from its last checkpoint.

The schedule travels inside every checkpoint (``contract.schedule``), so the one a member's last checkpoint holds is
its whole lineage, its ancestors' segments included, exactly as the weights were trained, whatever the scheduler
believed and however often the driver restarted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from contract.schedule import Schedule
from trainables.checkpoint import CHECKPOINT_FILE
from trainables.checkpoint_check import read_checkpoint
from trainables.config import ConfigError

log = logging.getLogger(__name__)


def schedule_of(result: Any) -> Schedule | None:
    """The schedule in a Tune ``Result``'s last checkpoint (None where it saved none, or it cannot be read: a
    warning)."""
    if result.checkpoint is None:
        return None
    try:
        with result.checkpoint.as_directory() as folder:
            state = read_checkpoint(Path(folder) / CHECKPOINT_FILE, "checkpoint")
    except (ConfigError, OSError) as e:
        log.warning("no schedule from %s: %s", result.path, e)
        return None
    return state.get("schedule") if isinstance(state, dict) else None
