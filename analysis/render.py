"""Write a report into a folder: report.html (self-contained), report.md (+ its PNGs), CSVs, best_config.yaml."""

from __future__ import annotations

import io
import time
from pathlib import Path

import matplotlib.pyplot as plt
import yaml
from matplotlib.figure import Figure

from analysis import final as F
from analysis import summarize as S
from analysis.load import Experiment
from analysis.population import is_population
from analysis.sections import Section, build_sections
from analysis.to_html import html_page
from analysis.to_markdown import markdown_document, png_name
from contract.files import BEST_CONFIG

FORMATS = ("html", "md", "csv")


def write_report(exp: Experiment, out: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Render every format asked for into ``out``; return the files written. best_config.yaml is written only
    where a trial is recommended (none when every trial diverged or failed)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    # a population's members' parameters are where they started: its recommendation is a schedule.json
    config = None if is_population(exp) else S.best_config(exp, F.winner(exp))
    if config is not None:
        written.append(_write(out / BEST_CONFIG, yaml.safe_dump(config, sort_keys=False)))
    sections = build_sections(exp)
    images = _pngs(sections)
    title = f"T2T-ViT search report: {exp.name}"
    generated = time.strftime("%Y-%m-%d %H:%M")
    if "html" in formats:
        written.append(_write(out / "report.html", html_page(title, generated, sections, images)))
    if "md" in formats:
        written += [_write(out / png_name(stem), png) for stem, png in images.items()]
        written.append(_write(out / "report.md", markdown_document(title, generated, sections)))
    if "csv" in formats:
        written += write_csv(exp, out)
    return written


def write_csv(exp: Experiment, out: Path) -> list[Path]:
    """The loaded tables as they are: one row per search trial, one per trial and epoch, and (where a final phase
    ran) one per final run."""
    tables = {"trials.csv": exp.trials, "history.csv": exp.history}
    if not exp.final.empty:
        tables["final.csv"] = exp.final
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
    return [out / name for name in tables]


def _pngs(sections: list[Section]) -> dict[str, bytes]:
    """Every figure as PNG bytes by its file stem; the figures are closed."""
    images = {}
    for section in sections:
        for stem, fig in section.figures.items():
            images[stem] = _png(fig)
            plt.close(fig)
    return images


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path
