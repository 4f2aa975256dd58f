"""Headless Chromium (Debian's package) for the tests and the screenshot script: load a page, wait for its scripts
(virtual time), and return its DOM, its console messages and a screenshot. Nothing outside loopback resolves."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.processes import kill_session

CHROMIUM = shutil.which("chromium")
_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # a page that reaches out fails, loudly
    "--enable-logging=stderr", "--v=0",
]  # fmt: skip


@dataclass
class Page:
    dom: str  # the DOM after the scripts ran (empty when only a screenshot was asked for)
    console: list[str]  # console messages and failed loads: a page that works logs none


def chromium() -> str:
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed: `make test` installs it (Debian: apt-get install chromium)")
    return CHROMIUM


def open_page(url: str, profile: Path, screenshot: Path | None = None, wait_ms: int = 8000,
              size: str = "1280,1600", timeout_s: float = 120) -> Page:  # fmt: skip
    """``url`` in a fresh profile; ``screenshot``: a PNG of the window, else the DOM is dumped."""
    what = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    args = [chromium(), *_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
            f"--virtual-time-budget={wait_ms}", *what, url]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        kill_session(proc)  # its renderer and GPU processes too, even on a timeout
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {err[-2000:]}")
    console = [line for line in err.splitlines() if "CONSOLE" in line or "Failed to load" in line]
    return Page(out if not screenshot else "", console)
