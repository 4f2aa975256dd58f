"""Headless Chromium (Debian's package) for the tests and the screenshot script: load a page, wait for its scripts
(virtual time), and return its DOM, its console messages and a screenshot. Nothing outside loopback resolves."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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


class Tab:
    """One page over the DevTools protocol (aiohttp's websocket): commands, and the console's errors as they come."""

    def __init__(self, ws) -> None:
        import itertools

        self.ws, self.ids, self.console, self.replies = ws, itertools.count(1), [], {}
        self.network: list[dict] = []  # the Network domain's events, once a caller enabled it

    async def call(self, method: str, **params) -> dict:
        import json

        n = next(self.ids)
        await self.ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
        while n not in self.replies:
            msg = json.loads((await self.ws.receive(timeout=60)).data)
            if "id" in msg:
                self.replies[msg["id"]] = msg
            else:
                self._event(msg)
        return self.replies.pop(n).get("result", {})

    def _event(self, msg: dict) -> None:
        params = msg.get("params", {})
        if msg["method"].startswith("Network."):
            self.network.append(msg)
        elif msg["method"] == "Runtime.exceptionThrown":
            self.console.append(params["exceptionDetails"].get("text", "exception"))
        elif msg["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.console.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif msg["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.console.append(params["entry"]["text"] + " " + params["entry"].get("url", ""))

    async def open(self, url: str) -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.call(f"{domain}.enable")
        await self.call("Page.navigate", url=url)

    async def evaluate(self, script: str) -> object:
        result = await self.call("Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path, scale: float = 1.0) -> None:
        """A PNG of the viewport; ``scale`` < 1 a smaller one."""
        import base64

        clip = {}
        if scale != 1.0:
            size = await self.evaluate("[window.innerWidth, window.innerHeight]")
            clip = {"clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": scale}}
        shot = await self.call("Page.captureScreenshot", format="png", **clip)
        path.write_bytes(base64.b64decode(shot["data"]))


async def _visit(ws_url: str, url: str, wait_s: float, script: str | None, screenshot: Path | None) -> Visit:
    """Load ``url``, let it run ``wait_s`` real seconds, evaluate ``script``, take the screenshot."""
    import asyncio

    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        tab = Tab(ws)
        await tab.open(url)
        await asyncio.sleep(wait_s)
        await tab.evaluate("0")  # collects the events that arrived meanwhile
        value = await tab.evaluate(script) if script else None
        if screenshot:
            await tab.screenshot(screenshot)
    return Visit(value, tab.console)


@contextmanager
def devtools(profile: Path, size: str = "1400,1000") -> Iterator[str]:
    """A fresh headless Chromium with DevTools on a loopback port: the websocket URL of its page; stopped by PID."""
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
        yield targets[0]["webSocketDebuggerUrl"]
    finally:
        kill_session(proc)


def visit(url: str, profile: Path, wait_s: float = 8.0, script: str | None = None, screenshot: Path | None = None,
          size: str = "1400,1000") -> Visit:  # fmt: skip
    """``url`` in a fresh headless Chromium driven over DevTools (for pages that never go idle, such as the MLflow
    UI, which polls): the value of ``script`` after ``wait_s`` seconds, the console's errors, a screenshot."""
    import asyncio

    with devtools(profile, size) as ws_url:
        return asyncio.run(_visit(ws_url, url, wait_s, script, screenshot))
