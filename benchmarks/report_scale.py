"""Benchmark 8: the analysis report of a 1,000-trial search, section by section: time and size.

    python benchmarks/report_scale.py [--trials 1000] [--store DIR] [--no-asha] [--profile]

The record is a real MLflow sqlite store made by ``benchmarks/scale_record.py`` (a parent run and one child run per
trial, as ``search.tracking.tracker`` writes them; real configurations of the default space, SYNTHETIC accuracies). It
is made once per ``--store`` folder (default: a new temporary folder) and reused when the folder already holds it.
The report reads MLflow only (``analysis.load.from_mlflow``): it rebuilds its Optuna study in memory from the runs,
so no study database is made.

Timed, one after the other, in this process: loading the experiment; each section of ``analysis.sections`` (building
its content, drawing its PNGs, writing its HTML); then the whole ``analysis.report.make_report`` once more (load and
every format written) for the total. Sizes: report.html, and report.md with its PNGs. Goals (issue 16): every
section at most 30 s, the HTML bounded. Writes benchmarks/results/report_scale.json (report_scale_no_asha.json).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The section builders build_sections calls, and what they share (the one fidelity and its study).
BUILDERS = ("final_evaluation", "overview", "best_configuration", "leaderboard", "importance",
            "parallel_coordinates", "learning_curves", "pareto", "cost", "failures", "at_one_epoch")  # fmt: skip
SECTION_GOAL_S = 30.0


@contextlib.contextmanager
def timed_builders(seconds: dict[str, float]):
    """Each builder in ``analysis.sections`` wrapped so that its time adds up in ``seconds`` (under its name, the
    Pareto sections under theirs by measure; the shared Optuna study under "study"), put back afterwards."""
    from analysis import sections

    originals = {name: getattr(sections, name) for name in BUILDERS}
    originals["study"] = sections.S.study

    def wrap(name, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                key = f"{name} {args[1]}" if name == "pareto" else name
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start

        return timed

    try:
        for name, fn in originals.items():
            setattr(sections.S if name == "study" else sections, name, wrap(name, fn))
        yield
    finally:
        for name, fn in originals.items():
            setattr(sections.S if name == "study" else sections, name, fn)


def per_section(exp) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per section (by title): build, PNG and HTML seconds; and the shared work's seconds."""
    import matplotlib.pyplot as plt

    from analysis import render, to_html
    from analysis.sections import build_sections

    built: dict[str, float] = {}
    with timed_builders(built):
        sections = build_sections(exp)
    names = [n for n in built if n not in ("at_one_epoch", "study")]
    out = {}
    for section, name in zip(sections, names, strict=True):
        start = time.perf_counter()
        images = {stem: render._png(fig) for stem, fig in section.figures.items()}
        png_s = time.perf_counter() - start
        for fig in section.figures.values():
            plt.close(fig)
        start = time.perf_counter()
        to_html._section(section, images)
        html_s = time.perf_counter() - start
        row = {"build_s": built[name], "png_s": png_s, "html_s": html_s}
        out[section.title] = {**row, "total_s": sum(row.values())}
    return out, {k: built[k] for k in ("at_one_epoch", "study") if k in built}


def sizes(folder: Path) -> dict[str, int]:
    md = (folder / "report.md").stat().st_size + sum(p.stat().st_size for p in folder.glob("*.png"))
    return {"html_bytes": (folder / "report.html").stat().st_size, "md_and_png_bytes": md}


def measure(uri: str, name: str, out: Path) -> dict:
    from analysis.load import from_mlflow
    from analysis.report import make_report

    start = time.perf_counter()
    exp = from_mlflow(name, uri)
    load_s = time.perf_counter() - start
    sections, shared = per_section(exp)
    start = time.perf_counter()
    make_report(name, uri, out)
    total_s = time.perf_counter() - start
    return {"trials": len(exp.trials), "epochs": len(exp.history), "load_s": load_s, "shared_s": shared,
            "sections": sections, "report_total_s": total_s, **sizes(out)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--store", type=Path, help="folder of the cached record (default: a new temporary one)")
    parser.add_argument("--no-asha", action="store_true", help="a search without ASHA: every trial trains 8 epochs")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions of the report")
    args = parser.parse_args()
    from benchmarks.scale_record import build

    store = args.store or Path(tempfile.mkdtemp(prefix="report-scale-"))
    uri, name = build(store, args.trials, asha=not args.no_asha)
    out = store / "report"
    profiler = cProfile.Profile() if args.profile else None
    with profiler or contextlib.nullcontext():
        result = measure(uri, name, out)
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    print(f"{result['trials']} trials, {result['epochs']} epochs; load {result['load_s']:.1f} s")
    for title, row in result["sections"].items():
        flag = "" if row["total_s"] <= SECTION_GOAL_S else "  over the goal"
        print(f"  {title:45s} {row['total_s']:6.2f} s (build {row['build_s']:.2f}, png {row['png_s']:.2f}, html "
              f"{row['html_s']:.2f}){flag}")  # fmt: skip
    print(f"whole report {result['report_total_s']:.1f} s; report.html {result['html_bytes'] / 1e6:.2f} MB, report.md "
          f"+ PNGs {result['md_and_png_bytes'] / 1e6:.2f} MB; written to {out}")  # fmt: skip
    result["store"] = str(store)
    path = Path(__file__).parent / "results" / f"report_scale{'_no_asha' if args.no_asha else ''}.json"
    path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
