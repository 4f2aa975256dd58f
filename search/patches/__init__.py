"""Runtime patches of real bugs in Ray Tune 2.60, applied by one call (``apply``) before the search starts.

Each module holds one patch: what it replaces, why, and its upstream report. Each is guarded by the library's
version and a fingerprint of the replaced source (``_patch.Patch``), so an upgraded Ray stops the driver at start
with one line naming the patch instead of misbehaving mid-search. Each has a test on Ray's real classes that shows
the bug on the stock library (``xfail(strict=True)``: it fails the day upstream fixes it) and the fix with the patch.
"""

from __future__ import annotations

from search.patches import actor_reuse, experiment_state, moved_storage, orphan_ids, whole_upload
from search.patches._patch import Patch, PatchError

PATCHES: tuple[Patch, ...] = (
    experiment_state.PATCH,
    whole_upload.PATCH,
    moved_storage.PATCH,
    actor_reuse.PATCH,
    orphan_ids.PATCH,
)

__all__ = ["PATCHES", "PatchError", "apply"]


def apply() -> None:
    """Check every patch against the installed libraries, then install them all (again: nothing changes).

    Raises:
        PatchError: a library differs from the one a patch was written for; nothing is installed.
    """
    for patch in PATCHES:
        if not patch.installed:
            patch.check()
    for patch in PATCHES:
        patch.install()
