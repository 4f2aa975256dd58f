"""The report as one self-contained HTML page: plots embedded as data URIs, so it opens offline."""

from __future__ import annotations

import base64
import html

from analysis.sections import Section, cell

STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table.t{border-collapse:collapse;font-size:13px;margin:.5em 0}"
    "table.t td,table.t th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}"
    "img{max-width:100%;display:block;margin:.5em 0}pre{background:#f5f5f5;padding:.8em}"
    ".meta{color:#777}.w{overflow-x:auto}"
)


def html_page(title: str, generated: str, sections: list[Section], images: dict[str, bytes]) -> str:
    """``images``: each figure's PNG by its file stem."""
    parts = [f"<h1>{html.escape(title)}</h1><p class=meta>Generated {generated}.</p>"]
    parts += [_section(s, images) for s in sections]
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _section(section: Section, images: dict[str, bytes]) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(f"<p>{html.escape(section.text)}</p>")
    if section.code:
        parts.append(f"<pre>{html.escape(section.code)}</pre>")
    for table in section.tables:
        parts.append(f"<div class=w>{table.to_html(index=False, float_format=cell, border=0, classes='t')}</div>")
    for stem in section.figures:
        data = base64.b64encode(images[stem]).decode()
        parts.append(f'<img alt="{stem}" src="data:image/png;base64,{data}">')
    return "".join(parts)
