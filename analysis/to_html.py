"""The report as one self-contained HTML page that opens offline: plotly.js embedded once in the page, every
interactive figure a plotly div (hover, zoom), any figure without one its PNG as a data URI."""

from __future__ import annotations

import base64
import html
from functools import cache

from analysis.sections import Section, cell

STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table.t{border-collapse:collapse;font-size:13px;margin:.5em 0}"
    "table.t td,table.t th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}"
    "img{max-width:100%;display:block;margin:.5em 0}pre{background:#f5f5f5;padding:.8em}"
    ".meta{color:#777}.w{overflow-x:auto}.fig{margin:.5em 0}"
)
# No link to plotly's site in the mode bar: nothing on the page points outside it.
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "plotlyServerURL": ""}


@cache
def plotly_js() -> str:
    """plotly.js as shipped with the plotly package (the version its figures are written for)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def html_page(title: str, generated: str, sections: list[Section], images: dict[str, bytes]) -> str:
    """``images``: each figure's PNG by its file stem (used where a section has no interactive figure)."""
    parts = [f"<h1>{html.escape(title)}</h1><p class=meta>Generated {generated}.</p>"]
    parts += [_section(s, images) for s in sections]
    script = f"<script>{plotly_js()}</script>" if any(s.interactive for s in sections) else ""
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style>{script}</head><body>{''.join(parts)}</body></html>"
    )


def _figure(stem: str, figure) -> str:
    import plotly.io

    div = plotly.io.to_html(figure, full_html=False, include_plotlyjs=False, div_id=stem, config=PLOTLY_CONFIG)
    return f"<div class=fig>{div}</div>"


def _section(section: Section, images: dict[str, bytes]) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(f"<p>{html.escape(section.text)}</p>")
    if section.code:
        parts.append(f"<pre>{html.escape(section.code)}</pre>")
    for table in section.tables:
        rendered = table.to_html(index=False, float_format=cell, na_rep="", border=0, classes="t")
        parts.append(f"<div class=w>{rendered}</div>")
    for stem in section.figures:
        if stem in section.interactive:
            parts.append(_figure(stem, section.interactive[stem]))
        else:
            data = base64.b64encode(images[stem]).decode()
            parts.append(f'<img alt="{stem}" src="data:image/png;base64,{data}">')
    return "".join(parts)
