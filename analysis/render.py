"""Write a report: a self-contained report.html (plots embedded), report.md (+ PNGs), and CSVs."""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import yaml

from analysis import plots
from analysis import summarize as S
from analysis.load import Experiment
from contract import metrics as M

FORMATS = ("html", "md", "csv")


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # file stem -> Figure
    code: str = ""


def build_sections(exp: Experiment) -> list[Section]:
    """The report's content as plain sections: every number comes from ``analysis.summarize``."""
    params = S.searched_params(exp)
    counts = S.status_counts(exp)
    sections = [
        Section(
            "Overview", f"Source: {exp.source}. Trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + "."
        )
    ]
    board = S.leaderboard(exp)
    best = S.best_trial(exp)
    config = S.best_config(exp)
    text = (
        f"Trial {best['trial_id']} ({best[M.STATUS]}): best val_acc {best[M.BEST_VAL_ACC]:.4f}, "
        f"{best[M.PARAMS] / 1e6:.2f}M parameters, {best[M.MACS] / 1e6:.1f} MMACs per image. Retrain it with "
        "`python -m trainables.train --config best_config.yaml` (the file is beside this report)."
    )
    baseline = S.baseline_trial(exp)
    if baseline is not None and not pd.isna(baseline[M.BEST_VAL_ACC]):
        gain = 100 * (best[M.BEST_VAL_ACC] - baseline[M.BEST_VAL_ACC])
        text += (
            f" The baseline, trial {baseline['trial_id']} with the base config's own values ({baseline[M.STATUS]}), "
            f"reached {baseline[M.BEST_VAL_ACC]:.4f}: the search gained {gain:+.2f} points."
        )
    sections.append(Section("Best configuration", text, code=yaml.safe_dump(config, sort_keys=False)))
    sections.append(Section("Leaderboard", "Top trials by best val_acc (ties: fewer MACs).", [board]))
    scores, method = S.importance(exp)
    top = list(scores)[:3] or params[:3]
    imp = Section("Hyperparameter importance", f"Method: {method}.")
    if scores:
        imp.tables.append(pd.DataFrame({"parameter": list(scores), "importance": list(scores.values())}))
        imp.figures["importance"] = plots.importance_bar(scores)
    if top:
        imp.figures["slices"] = plots.slices(exp, top)
    sections.append(imp)
    if params:
        sections.append(
            Section(
                "Parallel coordinates", "", figures={"parallel_coordinates": plots.parallel_coordinates(exp, params)}
            )
        )
    rungs = S.asha_rungs(exp)
    sections.append(
        Section(
            "Learning curves",
            "val_acc per epoch; green completed, gray pruned, red diverged, black failed"
            + (f"; ASHA compared trials at epochs {rungs}" if rungs else "")
            + ". Trials stopped at each epoch:",
            [S.rung_counts(exp)],
            {"learning_curves": plots.learning_curves(exp, rungs)},
        )
    )
    for cost in (M.MACS, M.PARAMS):
        front = S.pareto_front(exp.trials, cost)
        sections.append(
            Section(
                f"Pareto front: accuracy vs {cost}",
                f"Trials that no other trial beats on both best val_acc and {cost}.",
                [front[["trial_id", M.BEST_VAL_ACC, cost, *params]]],
                {f"pareto_{cost}": plots.pareto(exp.trials, front, cost)},
            )
        )
    c = S.cost(exp)
    minutes = {k: v / 60 for k, v in c.items() if k.endswith("_s")}
    text = (
        f"{minutes['trial_time_s']:.1f} trial-minutes in {c['trials']} trials over {minutes['wall_time_s']:.1f} "
        f"minutes; the best result came after {minutes['time_to_best_s']:.1f} minutes "
        f"({minutes['trial_time_to_best_s']:.1f} trial-minutes); {minutes['pruned_trial_time_s']:.1f} trial-minutes "
        "went to trials that were later pruned"
        + (f"; {c['gpu_hours']:.2f} GPU-hours." if c["gpu_hours"] else "; no GPU.")
    )
    sections.append(Section("Cost", text, [pd.DataFrame([c])]))
    bad = S.failures(exp)
    sections.append(Section("Failures and divergences", "None." if bad.empty else "", [] if bad.empty else [bad]))
    return sections


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _md_table(df: pd.DataFrame) -> str:
    rows = [list(map(str, df.columns)), ["---"] * len(df.columns)]
    rows += [[_fmt(v).replace("|", "\\|") for v in r] for r in df.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def write_report(exp: Experiment, out: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Render every format asked for into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(exp)
    written = [out / "best_config.yaml"]
    written[0].write_text(sections[1].code)
    images = {stem: _png(fig) for s in sections for stem, fig in s.figures.items()}
    for s in sections:
        for fig in s.figures.values():
            plt.close(fig)
    title = f"T2T-ViT search report: {exp.name}"
    stamp = time.strftime("%Y-%m-%d %H:%M")
    if "html" in formats:
        parts = [f"<h1>{html.escape(title)}</h1><p class=meta>Generated {stamp}.</p>"]
        for s in sections:
            parts.append(f"<h2>{html.escape(s.title)}</h2>")
            if s.text:
                parts.append(f"<p>{html.escape(s.text)}</p>")
            if s.code:
                parts.append(f"<pre>{html.escape(s.code)}</pre>")
            for table in s.tables:
                parts.append(
                    f"<div class=w>{table.to_html(index=False, float_format=_fmt, border=0, classes='t')}</div>"
                )
            for stem in s.figures:
                data = base64.b64encode(images[stem]).decode()
                parts.append(f'<img alt="{stem}" src="data:image/png;base64,{data}">')
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
            "table.t{border-collapse:collapse;font-size:13px;margin:.5em 0}"
            "table.t td,table.t th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}"
            "img{max-width:100%;display:block;margin:.5em 0}pre{background:#f5f5f5;padding:.8em}"
            ".meta{color:#777}.w{overflow-x:auto}"
        )
        page = (
            f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
        )
        (out / "report.html").write_text(page)
        written.append(out / "report.html")
    if "md" in formats:
        lines = [f"# {title}", "", f"Generated {stamp}.", ""]
        for s in sections:
            lines += [f"## {s.title}", ""]
            lines += [s.text, ""] if s.text else []
            lines += ["```yaml", s.code.rstrip(), "```", ""] if s.code else []
            for table in s.tables:
                lines += [_md_table(table), ""]
            for stem in s.figures:
                (out / f"{stem}.png").write_bytes(images[stem])
                written.append(out / f"{stem}.png")
                lines += [f"![{stem}]({stem}.png)", ""]
        (out / "report.md").write_text("\n".join(lines))
        written.append(out / "report.md")
    if "csv" in formats:
        exp.trials.to_csv(out / "trials.csv", index=False)
        exp.history.to_csv(out / "history.csv", index=False)
        written += [out / "trials.csv", out / "history.csv"]
    return written
