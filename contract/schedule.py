"""The schedule of a run's weights: which configuration trained each of their epochs, and whose run it was.

A schedule is a list of segments, oldest first, each ``{"id": ID, "epoch": E, "owner": RUN, "config": TrainConfig
dict}``; a segment trains epochs E + 1 up to the next segment's E, and its id is its own (a run whose segment changed
re-logs the epochs it trains again: search.tracking.writes). A segment whose weights came from another run's checkpoint
(a population member that copied another, ``search.population``) also names that run as ``"from"``. The first segment
starts at epoch 0. The trainer keeps its schedule in its checkpoints (plain values: they load with
``weights_only=True``), so the schedule travels with the weights through every copy, restart and resume, and is
exactly what the weights went through, whatever the scheduler believed.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

Schedule = list[dict[str, Any]]


def start(owner: str | None, config: dict[str, Any]) -> Schedule:
    """The schedule of new weights: ``config`` from epoch 0."""
    return [segment(0, owner, config)]


def segment(epoch: int, owner: str | None, config: dict[str, Any]) -> dict[str, Any]:
    """A new segment: ``config`` trains ``owner``'s weights from ``epoch`` + 1."""
    return {"id": uuid.uuid4().hex[:12], "epoch": epoch, "owner": owner, "config": copy.deepcopy(config)}


def continued(
    saved: Schedule, epoch: int, owner: str | None, saved_owner: str | None, config: dict[str, Any]
) -> Schedule:
    """The schedule of weights loaded from a checkpoint at ``epoch`` (made by ``saved_owner`` on ``saved``), trained
    on by ``owner`` with ``config``: a new segment from ``epoch`` unless the same run goes on as it was."""
    kept = [copy.deepcopy(s) for s in saved if s["epoch"] < epoch]
    if owner == saved_owner and kept and kept[-1]["config"] == config:
        return kept
    new = segment(epoch, owner, config)
    if owner != saved_owner:
        new["from"] = saved_owner
    return [*kept, new]


def config_at(schedule: Schedule, epoch: int) -> dict[str, Any]:
    """The configuration that trains epoch ``epoch`` (1 for the first)."""
    return next(s for s in reversed(schedule) if s["epoch"] < epoch)["config"]


def value(config: dict[str, Any], key: str) -> Any:
    """The value of a dotted ``key`` (``optim.lr``) in a config."""
    section, _, name = key.partition(".")
    return config[section].get(name)


def changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changes(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def with_values(schedule: Schedule, **train: Any) -> Schedule:
    """The schedule with ``train`` section values set in every segment (a final run's seed, its test split)."""
    out = copy.deepcopy(schedule)
    for segment in out:
        segment["config"]["train"].update(train)
    return out


def to_artifact(schedule: Schedule, keys: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``schedule.json``: the segments, and per segment the ``keys``' values and what changed from the one before
    (``changed``: key -> [old, new]); ``python -m trainables.train --schedule schedule.json`` replays it."""
    segments, previous = [], None
    for s in schedule:
        entry = {**copy.deepcopy(s), "values": {k: value(s["config"], k) for k in keys}}
        if previous is not None:
            entry["changed"] = {k: [value(previous, k), value(s["config"], k)] for k in changes(previous, s["config"])}
        segments.append(entry)
        previous = s["config"]
    return {"format": 1, "epochs": schedule[0]["config"]["train"]["epochs"], "segments": segments}


def from_artifact(artifact: dict[str, Any]) -> Schedule:
    """The schedule in a ``schedule.json`` (``to_artifact``); ``ValueError`` unless its segments start at epoch 0,
    in order, each with a config."""
    if not isinstance(artifact, dict) or artifact.get("format") != 1 or not isinstance(artifact.get("segments"), list):
        raise ValueError("not a schedule.json of format 1 (a dict with a list of segments)")
    segments = artifact["segments"]
    starts = [s.get("epoch") if isinstance(s, dict) else None for s in segments]
    if not segments or starts[0] != 0 or not all(isinstance(e, int) for e in starts) or starts != sorted(set(starts)):
        raise ValueError(f"its segments must start at epochs 0, then later ones in order, got {starts}")
    if not all(isinstance(s.get("config"), dict) for s in segments):
        raise ValueError("each of its segments needs a config")
    return [{k: s[k] for k in ("id", "epoch", "owner", "config", "from") if k in s} for s in segments]
