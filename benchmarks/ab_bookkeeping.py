"""The bookkeeping row of benchmarks/scale.py for two commits, in one invocation, runs alternating between them.

    python benchmarks/ab_bookkeeping.py --before febcc13 --after HEAD              # 2 runs each of 1,000 trials
    python benchmarks/ab_bookkeeping.py --before febcc13 --after HEAD --runs 3 --trials 300

Each commit is checked out in a git worktree of its own (removed at the end) and runs its own scale.py, so each
side measures the code it had. The order alternates (before, after, after, before, ...): the machine drifts.
Prints each run's row and, per commit, the medians of the whole wall and of Tune's run as multiples of the ideal.
Run it alone: two cores are easily saturated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worktree(rev: str, folder: Path) -> Path:
    path = folder / rev.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT, check=True)
    return path


def run(tree: Path, trials: int, scratch: Path) -> dict:
    """One bookkeeping row of ``tree``'s scale.py: the last JSON line it prints."""
    command = [sys.executable, str(tree / "benchmarks" / "scale.py"), "--trials", "", "--bookkeeping", str(trials),
               "--bookkeeping-stacks", "ours", "--scratch", str(scratch)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the tree's own packages, not the checkout's editable install
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=True, env=env)
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="a git revision")
    parser.add_argument("--after", default="HEAD", help="a git revision (default HEAD)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each")
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ab-"))
    trees = {rev: worktree(rev, folder) for rev in (args.before, args.after)}
    rows: dict[str, list[dict]] = {rev: [] for rev in trees}
    try:
        for i in range(args.runs):
            for rev in (args.before, args.after) if i % 2 == 0 else (args.after, args.before):
                row = run(trees[rev], args.trials, folder / f"scratch-{rev}-{i}")
                rows[rev].append(row)
                print(json.dumps({"rev": rev, **row}), flush=True)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    for rev, found in rows.items():
        wall = statistics.median(r["of_ideal"] for r in found)
        fit = statistics.median(r["fit_of_ideal"] for r in found)
        slots = [r.get("slots_used") for r in found]
        print(f"{rev}: median whole wall {wall:.3f}x of ideal, Tune's run {fit:.3f}x; slots used {slots}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
