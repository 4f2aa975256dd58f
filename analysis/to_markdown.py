"""The report as Markdown: each figure an image link to ``STEM.png`` beside the document."""

from __future__ import annotations

import pandas as pd

from analysis.sections import Section, cell


def markdown_document(title: str, generated: str, sections: list[Section]) -> str:
    """The report as Markdown: a title, then each section's text, tables and figures."""
    lines = [f"# {title}", "", f"Generated {generated}.", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        lines += [s.text, ""] if s.text else []
        lines += ["```yaml", s.code.rstrip(), "```", ""] if s.code else []
        lines += [line for table in s.tables for line in (markdown_table(table), "")]
        lines += [line for stem in s.figures for line in (f"![{stem}]({png_name(stem)})", "")]
    return "\n".join(lines)


def png_name(stem: str) -> str:
    """The file name of a figure's PNG beside report.md."""
    return f"{stem}.png"


def markdown_table(df: pd.DataFrame) -> str:
    """A table in Markdown, ``|`` in cells escaped."""
    rows = [list(map(str, df.columns)), ["---"] * len(df.columns)]
    rows += [[cell(v).replace("|", "\\|") for v in r] for r in df.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)
