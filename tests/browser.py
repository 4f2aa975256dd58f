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


@dataclass
class Visit:
    value: object  # what ``script`` evaluated to
    console: list[str]  # console errors, uncaught exceptions and failed loads


async def _visit(ws_url: str, url: str, wait_s: float, script: str | None, screenshot: Path | None) -> Visit:
    """Over the DevTools protocol (aiohttp's websocket client): load ``url``, let it run ``wait_s`` real seconds,
    evaluate ``script``, take the screenshot."""
    import asyncio
    import base64
    import itertools
    import json

    import aiohttp

    ids, console, replies = itertools.count(1), [], {}
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:

        async def call(method: str, **params):
            n = next(ids)
            await ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
            while n not in replies:
                msg = json.loads((await ws.receive(timeout=60)).data)
                if "id" in msg:
                    replies[msg["id"]] = msg
                elif msg["method"] == "Runtime.exceptionThrown":
                    console.append(msg["params"]["exceptionDetails"].get("text", "exception"))
                elif msg["method"] == "Runtime.consoleAPICalled" and msg["params"]["type"] == "error":
                    console.append(" ".join(str(a.get("value", a.get("description"))) for a in msg["params"]["args"]))
                elif msg["method"] == "Log.entryAdded" and msg["params"]["entry"]["level"] == "error":
                    console.append(msg["params"]["entry"]["text"] + " " + msg["params"]["entry"].get("url", ""))
            return replies.pop(n).get("result", {})

        for domain in ("Page", "Runtime", "Log"):
            await call(f"{domain}.enable")
        await call("Page.navigate", url=url)
        await asyncio.sleep(wait_s)
        await call("Runtime.evaluate", expression="0")  # collects the events that arrived meanwhile
        value = None
        if script:
            result = await call("Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True)
            value = result.get("result", {}).get("value")
        if screenshot:
            shot = await call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
    return Visit(value, console)


def visit(url: str, profile: Path, wait_s: float = 8.0, script: str | None = None, screenshot: Path | None = None,
          size: str = "1400,1000") -> Visit:  # fmt: skip
    """``url`` in a fresh headless Chromium driven over DevTools (for pages that never go idle, such as the MLflow
    UI, which polls): the value of ``script`` after ``wait_s`` seconds, the console's errors, a screenshot."""
    import asyncio
    import json
    import urllib.request

    from tests.processes import free_port, wait_for

    port = free_port()
    args = [chromium(), *_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
            f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1", "about:blank"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        targets: list = []

        def page_target() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
                    targets[:] = [t for t in json.load(answer) if t["type"] == "page"]
            except OSError:
                return False
            return bool(targets)

        wait_for(page_target, 60, "Chromium's DevTools endpoint")
        return asyncio.run(_visit(targets[0]["webSocketDebuggerUrl"], url, wait_s, script, screenshot))
    finally:
        kill_session(proc)
