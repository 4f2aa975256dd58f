"""Data on shared storage (trainables.staging): a real S3-compatible server on loopback (moto's server mode, started
and stopped by PID here), copied once per node, never used half copied, and a URI that cannot be read is one line
before Ray starts."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contract.tracking import DATASET_CONTEXT_TAG
from tests.conftest import run_search
from tests.processes import free_port, kill_session, serve
from tests.s3 import BUCKET, PER_CLASS, PREFIX, URI, aws
from tests.search.stores import runs
from trainables.staging import MANIFEST, listing, lock_file, stage

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """An S3 endpoint on 127.0.0.1 holding an image folder (train/val/test, two classes of 32 px PNGs)."""
    port, folder = free_port(), tmp_path_factory.mktemp("s3")
    server = serve([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], folder / "moto.log",
                   f"http://127.0.0.1:{port}/", "moto's S3 server")  # fmt: skip
    env = aws(f"http://127.0.0.1:{port}")
    try:
        code = f"from tests.s3 import upload; upload({str(folder / 'images')!r})"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, **env}, timeout=120)
        yield env
    finally:
        kill_session(server)


@pytest.fixture
def s3(s3_server, monkeypatch):
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    return s3_server


STAGE = """
import logging, sys
from pathlib import Path
from trainables.staging import stage
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
print("at", stage(sys.argv[1], Path(sys.argv[2])))
"""


def _stage_in_process(cache: Path, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", STAGE, URI, str(cache)], cwd=ROOT, env={**os.environ, **env},
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip


def test_two_trials_starting_at_once_on_a_node_make_one_copy(s3, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    files = listing(URI)
    assert len(files) == 3 * 2 * PER_CLASS
    # Hold the copy's lock while both start, so both wait for it, as two trials placed on a node together do.
    with open(lock_file(URI, cache), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        procs = [_stage_in_process(cache, s3, log) for log in logs]
        time.sleep(3)  # both are waiting on the lock now (or still importing: either way neither has copied)
        assert not list(cache.glob(f"{PREFIX}-*/{MANIFEST}"))
    try:
        assert [p.wait(timeout=120) for p in procs] == [0, 0], [log.read_text() for log in logs]
    finally:
        for p in procs:
            p.kill()
    outputs = [log.read_text() for log in logs]
    assert sum("copied s3://" in out for out in outputs) == 1, outputs  # one copy, the other trial used it
    targets = {line.split("at ", 1)[1] for out in outputs for line in out.splitlines() if line.startswith("at ")}
    assert len(targets) == 1
    target = Path(targets.pop())
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*.png")) == sorted(files)


def test_a_copy_killed_half_way_is_never_used_and_is_made_again(s3, tmp_path):
    first = stage(URI, tmp_path / "a")
    partial = first.with_name(f"{first.name}.partial")
    shutil.rmtree(first)
    partial.mkdir()
    (partial / "train").mkdir()  # what a copy killed half way leaves: a partial folder, no manifest, nothing renamed
    again = stage(URI, tmp_path / "a")
    assert again == first and not partial.exists() and (again / MANIFEST).is_file()
    some = next(again.rglob("*.png"))
    some.write_bytes(some.read_bytes()[:10])  # a finished copy whose file was cut short since
    assert stage(URI, tmp_path / "a") == first
    assert some.stat().st_size == listing(URI)[str(some.relative_to(first))]  # copied again whole


def test_a_new_version_of_the_data_gets_its_own_copy_and_the_old_one_stays(s3, tmp_path):
    import boto3

    old = stage(URI, tmp_path)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{PREFIX}/train/dark/extra.png", Body=b"not an image")
    try:
        new = stage(URI, tmp_path)
    finally:
        boto3.client("s3").delete_object(Bucket=BUCKET, Key=f"{PREFIX}/train/dark/extra.png")
    assert new != old and (new / "train" / "dark" / "extra.png").is_file()
    assert (old / MANIFEST).is_file()  # trials that still read the old version keep it


def test_a_uri_that_cannot_be_read_is_one_line_before_ray_starts(s3, tmp_path):
    for root in (f"s3://{BUCKET}/nothere", "s3://no-such-bucket/x"):
        folder = tmp_path / root.replace("/", "_").replace(":", "")
        folder.mkdir()
        args = [
            "--smoke-test",
            "--name",
            "bad",
            "--set",
            "base.data.name=imagefolder",
            "--set",
            f"base.data.root={root}",
        ]
        assert run_search(folder, *args) == 2
        lines = (folder / "search.log").read_text().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and root in lines[0], lines
        assert not (folder / "ray_results").exists()


def test_a_search_trains_from_s3_through_each_nodes_copy(s3, tmp_path):
    cache = tmp_path / "cache"
    os.environ["T2T_DATA_CACHE"] = str(cache)  # the trials' nodes: this machine (restored after the test)
    args = ["--smoke-test", "--name", "s3"]
    for item in ("base.data.name=imagefolder", f"base.data.root={URI}", "base.data.batch_size=8",
                 "base.data.augment=false", "search.final.enabled=false", "search.register_model=false",
                 "search.report=false"):  # fmt: skip
        args += ["--set", item]
    assert run_search(tmp_path, *args) == 0, (tmp_path / "search.log").read_text()[-3000:]
    assert len(list(cache.glob(f"{PREFIX}-*/{MANIFEST}"))) == 1  # one copy for the three trials
    _, _, children = runs(f"sqlite:///{tmp_path}/mlflow.db", "s3")
    assert len(children) == 3
    for child in children:
        sources = {i.dataset.source for i in child.inputs.dataset_inputs if i.tags[0].key == DATASET_CONTEXT_TAG}
        assert sources == {f'{{"source": "{URI}"}}'}  # the data set is named by where it lives, not the copy
