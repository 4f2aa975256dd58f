"""The final phase's numbers, computed one way for the search's summary and for the report.

After the search, each candidate (the search's best completed configurations, and the baseline) is retrained from
scratch with several seeds and measured once on the final split: test, or val for an image folder without test/.
One row per such run goes in; out come each candidate's accuracy over its seeds (``contract.intervals``), the
winner, and every candidate's gain over the baseline, the search's pick first.

- The **pick** is the search's top-ranked configuration other than the baseline, fixed before the final phase
  (where the baseline ranked first, the best other one is retrained for it): its gain over the baseline
  is the one number that says whether the search helped, and it is not conditioned on the final phase's own val.
- The **winner** is chosen on validation numbers (each candidate's mean last-epoch val_acc over its seeds; the
  baseline competes too), never on test. Only a candidate all of whose runs completed may win: a configuration that
  diverges on 2 of 3 seeds must not win on its one survivor. Where no candidate completed every run, the best of
  those with a completed run wins, and its line says how many of its runs failed.
- The comparisons are not adjusted for their number (one per candidate): the verdict says so where there are
  several, and that a winner other than the pick, chosen on val among them, has an optimistic gain.
- A comparison says "better" or "worse" only where its 95% interval (``contract.intervals.Gain.interval``) excludes
  0, and says which noise that interval covers; each outcome has its own sentence (``verdict``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from contract.hits import decode as hits_of
from contract.intervals import Estimate, Gain
from contract.metrics import STATUS, TEST_ACC, VAL_ACC
from contract.status import COMPLETED, DIVERGED, FAILED
from contract.tracking import TEST_SPLIT, VAL_SPLIT

SOURCE, SEED, BASELINE, HITS = "source", "seed", "baseline", "hits"  # a row's keys besides status and accuracies
# The source of a baseline that no search trial trained as it is: a population's (search.mode pbt or pb2), whose
# members all changed their values as they trained.
BASE_SOURCE = "base_config"
# The accuracy a final run is measured by, for each final split.
MEASURED = {TEST_SPLIT: TEST_ACC, VAL_SPLIT: VAL_ACC}


def named(source: str) -> str:
    """A candidate's source in a sentence: "trial ID", or "the base config"."""
    return "the base config" if source == BASE_SOURCE else f"trial {source}"


@dataclass(frozen=True)
class Candidate:
    """One retrained configuration with a completed run: its source trial, whether it is the baseline, and its
    completed runs' seeds and numbers (how every run of it ended: ``FinalResult.runs``)."""

    source: str  # the search trial whose configuration was retrained
    baseline: bool
    seeds: list[int]
    measured: Estimate  # on the final split
    val: Estimate  # last-epoch val_acc: what chooses the winner


@dataclass
class FinalResult:
    """The final phase: its candidates, the search's pick, the winner, the baseline and the gains over it."""

    candidates: list[Candidate] = field(default_factory=list)
    winner: str | None = None  # a candidate's source
    baseline: str | None = None
    gains: dict[str, Gain] = field(default_factory=dict)  # source -> its gain over the baseline (the baseline's none)
    failed: list[str] = field(default_factory=list)  # sources none of whose runs completed with a number
    ranked: list[str] = field(default_factory=list)  # every source in the search's order, its best first
    split: str = TEST_SPLIT  # what the final runs were measured on
    runs: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> status -> runs, every source
    baseline_status: str | None = None  # the baseline trial's end in the search (None: search.baseline off)

    @property
    def pick(self) -> str | None:
        """The search's pick: its top-ranked configuration other than the baseline (a source), the one whose gain
        over the baseline says whether the search helped; None where the baseline was the only candidate."""
        return next((s for s in self.ranked if s != self.baseline), None)

    @property
    def gain(self) -> Gain | None:
        """The winner's gain over the baseline (None: no baseline, or the winner is the baseline)."""
        return self.gains.get(self.winner)

    def roles(self, source: str) -> list[str]:
        """What ``source`` is in the final phase: ``pick``, ``winner``, ``baseline`` (none, one or several)."""
        named = (("pick", self.pick), ("winner", self.winner), ("baseline", self.baseline))
        return [role for role, of in named if of == source]

    def ends(self, source: str) -> str:
        """How ``source``'s final runs ended: ``2 completed, 1 diverged`` (``unknown`` in a summary written before
        the ends were kept)."""
        return ", ".join(f"{n} {status}" for status, n in self.runs.get(source, {}).items()) or "unknown"

    def complete(self, source: str) -> bool:
        """Every final run of ``source`` completed."""
        return set(self.runs.get(source, {})) <= {COMPLETED}

    def flag(self, source: str) -> str | None:
        """``2 diverged of its 3 runs (left out of its numbers)``, or None when every run completed."""
        counts = self.runs.get(source, {})
        bad = ", ".join(f"{n} {status}" for status, n in counts.items() if status != COMPLETED)
        return f"{bad} of its {sum(counts.values())} runs (left out of its numbers)" if bad else None

    def candidate(self, source: str | None) -> Candidate | None:
        """The candidate retrained from ``source``, or None."""
        return next((c for c in self.candidates if c.source == source), None)

    @property
    def compared(self) -> int:
        """How many candidates were compared with the baseline (unadjusted when more than one)."""
        return len(self.gains)

    def verdict(self) -> str:
        """What happened, in sentences true in every outcome (``verdict``): the printed summary's, the report's and
        the parent run's ``final.verdict`` tag."""
        return verdict(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for ``search_summary.json``."""
        return asdict(self) | {"pick": self.pick}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FinalResult:
        """The result ``to_dict`` wrote (an earlier version's ``test`` and ``gain`` read as ``measured`` and the
        winner's gain)."""
        candidates = []
        for c in values["candidates"]:
            c = dict(c)
            measured = Estimate(**c.pop("measured", None) or c.pop("test"))
            c.pop("test", None)
            c.pop("runs", None)  # kept per candidate by an earlier version: FinalResult.runs holds them
            candidates.append(Candidate(**{**c, "measured": measured, "val": Estimate(**c["val"])}))
        gains = {s: Gain.from_dict(g) for s, g in (values.get("gains") or {}).items()}
        if values.get("gain") and values.get("winner") not in gains:
            gains[values["winner"]] = Gain.from_dict(values["gain"])
        return cls(
            candidates, values.get("winner"), values.get("baseline"), gains,
            list(values.get("failed", [])), list(values.get("ranked", [])), values.get("split") or TEST_SPLIT,
            dict(values.get("runs") or {}), values.get("baseline_status"),
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """The parent run's metrics: the winner's, the baseline's and the pick's accuracy on the final split
        (``final_test_acc_mean``...), the gains, and the final runs' ends."""
        out: dict[str, float] = {}
        acc = MEASURED[self.split]
        for prefix, source in (("final_", self.winner), ("baseline_", self.baseline), ("pick_", self.pick)):
            c = self.candidate(source)
            if c is not None:
                e = c.measured
                values = {"mean": e.mean, "std": e.std, "low": e.low, "high": e.high}
                out |= {f"{prefix}{acc}_{k}": v for k, v in values.items() if v is not None}
        for prefix, gain in (("final_gain", self.gain), ("pick_gain", self.gains.get(self.pick))):
            if gain is not None:
                values = {"mean": gain.mean, "low": gain.low, "high": gain.high}
                values |= {"paired_low": gain.paired_low, "paired_high": gain.paired_high}
                out |= {f"{prefix}_{k}": v for k, v in values.items() if v is not None}
        ends = Counter()
        for counts in self.runs.values():
            ends.update(counts)
        return out | {f"final_runs_{s}": float(ends[s]) for s in (COMPLETED, DIVERGED, FAILED)}

    def tags(self) -> dict[str, str]:
        """The parent run's tags: the split, the verdict, the winner and the pick, each candidate's runs."""
        runs = "; ".join(f"{s}: {self.ends(s)}" for s in self.runs)
        tags = {"final.split": self.split, "final.verdict": self.verdict(), "final.runs": runs}
        return tags | {f"final.{k}": v for k, v in (("winner", self.winner), ("pick", self.pick)) if v}


def summarize(
    rows: Iterable[Mapping[str, Any]], split: str = TEST_SPLIT, baseline_status: str | None = None
) -> FinalResult:
    """The final phase from one row per run: ``source``, ``seed``, ``baseline``, ``status``, ``val_acc`` (last
    epoch), ``test_acc`` (None where the split is val) and ``hits`` (``contract.hits.encode``, or None);
    rows in the search's order (its best first). Only completed runs with a number on ``split`` count.
    ``baseline_status``: the baseline trial's end in the search, None where search.baseline was off."""
    rows, key = list(rows), MEASURED[split]
    ranked = list(dict.fromkeys(r[SOURCE] for r in rows))
    runs = {s: dict(Counter(str(r.get(STATUS)) for r in rows if r[SOURCE] == s)) for s in ranked}
    done = [r for r in rows if r.get(STATUS) == COMPLETED and r.get(key) is not None]
    groups = {s: sorted((r for r in done if r[SOURCE] == s), key=lambda r: r[SEED]) for s in ranked}
    groups = {s: g for s, g in groups.items() if g}
    candidates = [_candidate(s, g, key) for s, g in groups.items()]
    result = FinalResult(
        candidates, failed=[s for s in ranked if s not in groups], ranked=ranked, split=split, runs=runs,
        baseline_status=baseline_status, baseline=next((r[SOURCE] for r in rows if r.get(BASELINE)), None),
    )  # fmt: skip
    if not candidates:
        return result
    eligible = [c for c in candidates if result.complete(c.source)] or candidates
    result.winner = max(eligible, key=lambda c: c.val.mean).source  # max keeps the first of equals: the better-ranked
    baseline = result.candidate(result.baseline)
    if baseline is None:
        return result
    for c in candidates:
        if c is not baseline:
            result.gains[c.source] = Gain.between(
                _numbers(groups[c.source], key), _numbers(groups[baseline.source], key), *_hits(groups, c, baseline)
            )
    return result


def _candidate(source: str, group: list[Mapping[str, Any]], key: str) -> Candidate:
    hits = [r.get(HITS) for r in group]
    items = len(hits_of(hits[0])[1]) if all(hits) else None
    return Candidate(
        source=source,
        baseline=any(r.get(BASELINE) for r in group),
        seeds=[int(r[SEED]) for r in group],
        measured=Estimate.of(_numbers(group, key), items),
        val=Estimate.of(_numbers(group, VAL_ACC)),
    )


def _numbers(group: list[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in group]


def _hits(groups: dict[str, list], a: Candidate, b: Candidate) -> tuple[list | None, list | None]:
    """Each side's per-image hits, or (None, None) unless every run of both has them, on the same images."""
    sides = [[r.get(HITS) for r in groups[c.source]] for c in (a, b)]
    if not all(all(side) for side in sides):
        return None, None
    decoded = [[hits_of(h) for h in side] for side in sides]
    if len({images for side in decoded for images, _ in side}) != 1:
        return None, None
    return tuple([hits for _, hits in side] for side in decoded)


def verdict(r: FinalResult) -> str:
    """What happened: first the search's pick against the baseline (whether the search helped), then who won the
    final phase on val and, where it is another candidate, that winner against the baseline; joined by semicolons."""
    if r.winner is None:
        return f"no final run completed with a number on {r.split}: nothing was measured"
    if r.candidate(r.baseline) is None:
        return f"{_no_baseline(r)}: nothing to compare the winner, {named(r.winner)}, with"
    said = [_pick(r), _winner(r)]
    flag = r.flag(r.winner)
    if flag:
        said.append(f"no candidate completed every run: the winner has {flag}")
    if r.compared > 1:
        said.append(f"the {r.compared} comparisons with the baseline are not adjusted for their number")
    return "; ".join(said)


def _pick(r: FinalResult) -> str:
    if r.ranked[0] == r.baseline:
        lead = "the search's best configuration was the baseline's own (it found nothing better on val)"
        if r.pick is None:
            return f"{lead}: no other configuration was retrained"
        who = f"{lead}; its best other configuration, {named(r.pick)}"
    else:
        who = f"the search's pick, {named(r.pick)}"
    if r.pick in r.failed:
        return f"{who}: no final run of it completed with a number on {r.split} ({r.ends(r.pick)})"
    return f"{who}, {compare(r.gains[r.pick], r.split)}"


def _winner(r: FinalResult) -> str:
    if r.winner == r.baseline:
        winner = r.candidate(r.winner)
        above = [c.source for c in r.candidates if not r.complete(c.source) and c.val.mean > winner.val.mean]
        if above:
            return (f"the baseline won the final phase on val among the candidates whose runs all completed (trial "
                    f"{', '.join(above)} scored higher on val, but not every run of it completed)")  # fmt: skip
        return "the baseline won the final phase on val: no configuration of the search beat it there"
    if r.winner == r.pick:
        return "the pick also won the final phase on val"
    among = len(r.candidates)
    return (f"the final phase's winner on val is {named(r.winner)}, which {compare(r.gains[r.winner], r.split)}; "
            f"chosen on val among {among} candidates, its gain is optimistic, the pick's is not")  # fmt: skip


def compare(g: Gain, split: str) -> str:
    """``is better than the baseline on test (+2.10 points; 95% interval +0.52 to +3.68 over seeds and images)``."""
    points = f"{100 * g.mean:+.2f} points"
    if g.interval is None:
        if min(g.runs) < 2:
            why = "fewer than 2 completed runs on a side"
        elif g.items:
            why = "the per-image differences have no variance"
        else:
            why = "no spread over seeds on either side, and no per-image hits to measure the images' own error"
        return f"cannot be told apart from the baseline on {split} ({points}; {why})"
    low, high = g.interval
    said = f"({points}; 95% interval {100 * low:+.2f} to {100 * high:+.2f} {g.over})"
    if g.distinguishable:
        return f"is {'better' if g.mean > 0 else 'worse'} than the baseline on {split} {said}"
    return f"cannot be told apart from the baseline on {split} {said}"


def _no_baseline(r: FinalResult) -> str:
    """Why there is no baseline to compare with."""
    if r.baseline is not None:  # retrained, and no run of it completed with a number
        return f"no final run of the baseline, {named(r.baseline)}, completed with a number on {r.split} " \
               f"({r.ends(r.baseline)})"  # fmt: skip
    if r.baseline_status is None:
        return "no baseline was retrained (search.baseline off)"
    if r.baseline_status in (DIVERGED, FAILED):
        return f"the baseline {r.baseline_status} in the search, so it was not retrained"
    return "the baseline has no final run"
