"""MLflow's UI on a search of 1,000 trials (and 100 for contrast), in headless Chromium: how long the runs page takes
to show the search's parent row, and its expand control to show the trials nested under it.

    .venv/bin/python benchmarks/mlflow_ui_scale.py [--store PATH] [--sizes 100,1000] [--views printed,best-first]

The store is a real MLflow sqlite store holding one experiment per size, written as the search writes one
(``benchmarks/search_store.py``); ``--store`` keeps it (and reuses it when it already holds them). ``mlflow ui``
serves it on a free 127.0.0.1 port; Chromium opens the address the search prints (the runs, training view), waits
for the parent row, clicks its expand button and waits for child rows; then the same address sorted by
best_val_acc. Every process is stopped by PID. Writes ``results/mlflow_ui_scale.json`` and screenshots (half size)
to ``results/``, full size to ``--shots``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from benchmarks.search_store import write_search
from contract import metrics as M
from contract.tracking import PARENT_RUN_TAG, ROLE_PARENT, ROLE_TAG, UI_TRAINING_VIEW
from tests.browser import Tab, devtools
from tests.processes import free_port, kill_session, serve

RESULTS = Path(__file__).resolve().parent / "results"
PAGE = 100  # the runs MLflow's runs table loads per page ("Load more" for the next), not settable from outside
# The addresses compared: the one the search prints (the training view), and the same sorted by each trial's best
# val_acc, so the first page a parent expands to holds the leading trials rather than the latest.
VIEWS = {
    "printed": UI_TRAINING_VIEW,
    "best-first": f"{UI_TRAINING_VIEW}&orderByKey={quote(f'metrics.`{M.BEST_VAL_ACC}`')}&orderByAsc=false",
}
WAIT_S = 300.0  # how long a state may take before it counts as never reached
POLL_S = 0.25
# What the page shows: the parent row, the rows nested under it (every other row: the experiment holds one search;
# MLflow indents them itself, ag-grid's row level stays 0), the runs counter, a "Load more" button.
STATE = """(() => {
  const rows = [...document.querySelectorAll('.ag-center-cols-container .ag-row')];
  const more = [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Load more');
  const counter = (document.body.innerText.match(/([0-9,]+) matching runs/) || [])[1] || null;
  const parent = rows.some(r => r.getAttribute('row-id') === '%s');
  return {parent, children: rows.length - (parent ? 1 : 0), matching: counter, load_more: more};
})()"""
# The expand control: the button in the parent row's run-name cell (MLflow 3's runNameCellRenderer).
EXPAND = """(() => {
  const row = document.querySelector('.ag-pinned-left-cols-container .ag-row[row-id="%s"]');
  const button = row && row.querySelector('[col-id="attributes.`Run Name`"] button');
  if (button) button.click();
  return !!button;
})()"""


def _store(path: Path, sizes: list[int]) -> dict[int, dict]:
    """Each size's experiment id, parent run id and the best_val_acc of its PAGE-th best trial, from ``path`` or
    written there (on tmpfs first: sqlite's fsync per commit makes a disk store ~4x slower to fill)."""
    from mlflow.tracking import MlflowClient

    names = {n: f"ui-scale-{n}" for n in sizes}
    client = MlflowClient(f"sqlite:///{path}") if path.exists() else None
    missing = [n for n in sizes if client is None or client.get_experiment_by_name(names[n]) is None]
    if missing:
        scratch = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None)) / "mlflow.db"
        if path.exists():
            shutil.copy(path, scratch)
        for n in missing:
            started = time.monotonic()
            write_search(scratch, names[n], n)
            print(f"wrote {n} trial runs in {time.monotonic() - started:.0f} s", flush=True)
        shutil.move(scratch, path)
        client = MlflowClient(f"sqlite:///{path}")
    found = {}
    for n in sizes:
        experiment = client.get_experiment_by_name(names[n]).experiment_id
        parent = client.search_runs([experiment], f"tags.`{ROLE_TAG}` = '{ROLE_PARENT}'", max_results=1)[0]
        trials = client.search_runs([experiment], f"tags.`{PARENT_RUN_TAG}` = '{parent.info.run_id}'", max_results=n)
        best = sorted((r.data.metrics[M.BEST_VAL_ACC] for r in trials), reverse=True)
        found[n] = {"experiment": experiment, "parent": parent.info.run_id, "page_floor": best[min(PAGE, n) - 1]}
    return found


async def _until(tab: Tab, script: str, reached, started: float) -> tuple[float | None, dict]:
    """Seconds since ``started`` until ``reached(state)``, polled (None: not within WAIT_S), and the last state."""
    while True:
        state = await tab.evaluate(script)
        if state and reached(state):
            return time.monotonic() - started, state
        if time.monotonic() - started > WAIT_S:
            return None, state or {}
        await asyncio.sleep(POLL_S)


async def _searches(tab: Tab, parent: str) -> dict:
    """The page's runs/search requests (what each asked for, how long it took, how many runs and children), and
    how many of the parent's children they brought in all."""
    sent = {e["params"]["requestId"]: e["params"] for e in tab.network if e["method"] == "Network.requestWillBeSent"}
    done = {e["params"]["requestId"]: e["params"] for e in tab.network if e["method"] == "Network.loadingFinished"}
    out, children = [], {}
    for rid, req in sent.items():
        if "runs/search" not in req["request"]["url"] or rid not in done:
            continue
        body = json.loads((await tab.call("Network.getResponseBody", requestId=rid)).get("body") or "{}")
        runs = body.get("runs", [])
        nested = [r for r in runs if any(t["key"] == PARENT_RUN_TAG and t["value"] == parent
                                         for t in r.get("data", {}).get("tags", []))]  # fmt: skip
        for r in nested:
            scores = {m["key"]: m["value"] for m in r["data"].get("metrics", [])}
            children[r["info"]["run_id"]] = scores.get(M.BEST_VAL_ACC)
        asked = json.loads(req["request"].get("postData") or "{}")
        keys = ("max_results", "order_by", "filter", "page_token")
        out.append({"asked": {k: asked[k] for k in keys if asked.get(k)},
                    "seconds": round(done[rid]["timestamp"] - req["timestamp"], 2), "runs": len(runs),
                    "children": len(nested), "bytes": done[rid]["encodedDataLength"]})  # fmt: skip
    scores = [v for v in children.values() if v is not None]
    return {"requests": out, "children_loaded": len(children), "lowest_best_val_acc": min(scores, default=None)}


async def _measure(ws_url: str, url: str, parent: str, shots: dict[str, list[Path]]) -> dict:
    """Open the runs page, wait for the parent row, expand it, wait for its children; a screenshot of each state."""
    import aiohttp

    state = STATE % parent
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        tab = Tab(ws)
        await tab.call("Network.enable")
        started = time.monotonic()
        await tab.open(url)
        parent_s, shown = await _until(tab, state, lambda s: s["parent"], started)
        await _shoot(tab, shots["collapsed"])
        clicked, expand_s, expanded = False, None, {}
        if parent_s is not None:
            clicked = await tab.evaluate(EXPAND % parent)
            expand_s, expanded = await _until(tab, state, lambda s: s["children"] > shown["children"], time.monotonic())
            await asyncio.sleep(2)  # the rows that arrive with the first ones
            expanded = await tab.evaluate(state)
        if clicked:  # sorted by a metric, MLflow lists the runs flat: there is no expand control
            await _shoot(tab, shots["expanded"])
        searches = await _searches(tab, parent)
        return {"parent_row_s": parent_s, "shown": shown, "expand_clicked": clicked, "expand_s": expand_s,
                "expanded": expanded, "searches": searches, "console": tab.console[:10]}  # fmt: skip


async def _shoot(tab: Tab, paths: list[Path]) -> None:
    """The first path full size, the others half size."""
    await tab.screenshot(paths[0])
    for path in paths[1:]:
        await tab.screenshot(path, scale=0.5)


def _ui(store: Path, log: Path) -> tuple[object, int, float]:
    """``mlflow ui`` on 127.0.0.1 (one worker, as tests/ui_screenshots.py starts it): the process, its port, and the
    seconds until /health answered."""
    port, started = free_port(), time.monotonic()
    args = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{store}", "--workers", "1"]  # fmt: skip
    proc = serve(args, log, f"http://127.0.0.1:{port}/health", "mlflow ui")
    return proc, port, time.monotonic() - started


def run_size(store: Path, n: int, search: dict, view: str, shots: Path) -> dict:
    """One size and view on a fresh server and a fresh browser profile (nothing cached)."""
    states = ("collapsed", "expanded")
    names = {s: [shots / f"mlflow-ui-{n}-{view}-{s}.png", RESULTS / f"mlflow_ui_{n}_{view}_{s}.png"] for s in states}
    proc, port, server_s = _ui(store, shots / f"mlflow-ui-{n}-{view}.log")
    try:
        url = f"http://127.0.0.1:{port}/#/experiments/{search['experiment']}/runs?{VIEWS[view]}"
        with devtools(Path(tempfile.mkdtemp(prefix="chromium-"))) as ws_url:
            measured = asyncio.run(_measure(ws_url, url, search["parent"], names))
    finally:
        kill_session(proc)
    return {"trials": n, "view": view, "page_floor": search["page_floor"], "server_start_s": round(server_s, 2),
            **measured}  # fmt: skip


def _row(r: dict) -> str:
    def s(v):
        return "never" if v is None else f"{v:.1f} s"

    asked, loaded = r["searches"]["requests"], r["searches"]["children_loaded"]
    floor, lowest = r["page_floor"], r["searches"]["lowest_best_val_acc"]
    top = "-" if lowest is None else "yes" if lowest >= floor else f"no ({lowest:.3f} < {floor:.3f})"
    return (f"{r['trials']:>6} | {r['view']:>10} | {s(r['server_start_s'])} | {s(r['parent_row_s'])} | "
            f"{s(r['expand_s'])} | "
            f"{r['expanded'].get('children', 0)} rendered, {loaded} of {r['trials']} loaded | "
            f"{top} | {len(asked)} runs/search, {sum(q['seconds'] for q in asked):.1f} s")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="an sqlite file to keep (and reuse) the runs in")
    parser.add_argument("--sizes", default="100,1000", help="trial counts, comma-separated")
    parser.add_argument("--views", default=",".join(VIEWS), help=f"which of {', '.join(VIEWS)}")
    parser.add_argument("--shots", type=Path, default=None, help="where the full-size screenshots and logs go")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    shots = args.shots or Path(tempfile.mkdtemp(prefix="mlflow-ui-scale-"))
    store = (args.store or Path(tempfile.mkdtemp(prefix="mlflow-ui-store-")) / "mlflow.db").resolve()
    shots.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    found = _store(store, sizes)
    rows = []
    for n in sizes:
        for view in args.views.split(","):
            load = os.getloadavg()[0]
            rows.append({**run_size(store, n, found[n], view, shots), "load_before": round(load, 1)})
            print(_row(rows[-1]), flush=True)
    print(
        " trials |       view | server start | parent row | expand -> children | child rows |"
        f" the {PAGE} best loaded | the page's run searches"
    )
    for r in rows:
        print(_row(r))
    (RESULTS / "mlflow_ui_scale.json").write_text(json.dumps({"rows": rows, "store": str(store)}, indent=2) + "\n")
    print(f"screenshots and server logs: {shots}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
