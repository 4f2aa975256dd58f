"""Data on shared storage reaching every node of a real two-host cluster: an S3 server (moto) on the head's address,
each host with its own cache; every host that ran a trial holds one whole copy, and the trials trained from it."""

from __future__ import annotations

import sys

import pytest

from contract.tracking import DATASET_CONTEXT_TAG, NODE_IP_TAG
from tests.cluster.netns import HEAD_IP, WORKER_IP, Cluster
from tests.cluster.test_multinode import _runs, _search_args
from tests.processes import wait_for
from tests.s3 import PREFIX, URI, aws
from trainables.staging import MANIFEST

pytestmark = pytest.mark.cluster
S3_PORT = 9123


def _start_s3(cluster: Cluster) -> dict[str, str]:
    """moto's S3 server on the head host's address, holding the test image folder; the AWS_* variables to reach it."""
    endpoint = f"http://{HEAD_IP}:{S3_PORT}"
    cluster.daemons.append(
        cluster.spawn_in(HEAD_IP, [sys.executable, "-m", "moto.server", "-H", HEAD_IP, "-p", str(S3_PORT)], "moto.log")
    )
    env = aws(endpoint)
    probe = f"import urllib.request; urllib.request.urlopen('{endpoint}/', timeout=2)"
    wait_for(lambda: cluster.run_in(HEAD_IP, [sys.executable, "-c", probe], **env).returncode == 0, 60, "moto", 1)
    code = f"from tests.s3 import upload; upload({str(cluster.folder / 'images')!r})"
    out = cluster.run_in(HEAD_IP, [sys.executable, "-c", code], timeout_s=120, **env)
    assert out.returncode == 0, out.stderr[-3000:]
    return env


def test_each_host_stages_the_data_once_and_its_trials_train_from_it(cluster):
    s3 = _start_s3(cluster)
    caches = {ip: cluster.folder / f"cache-{ip}" for ip in (HEAD_IP, WORKER_IP)}
    for ip, cache in caches.items():
        cluster.start_node(ip, env={**s3, "T2T_DATA_CACHE": str(cache)})
    cluster.start_mlflow()
    sets = ("search.num_trials=4", "base.data.name=imagefolder", f"base.data.root={URI}", "base.data.batch_size=8",
            "base.data.augment=false", "base.train.epochs=2",
            "search.register_model=false", "search.report=false")  # fmt: skip
    proc = cluster.search(*_search_args("staged", cluster, *sets), env=s3)
    code = proc.wait(timeout=420)
    log = (cluster.folder / "search.log").read_text()
    assert code == 0, log[-4000:]
    _, _, children = _runs(cluster, "staged")
    hosts = {c.data.tags[NODE_IP_TAG] for c in children}
    assert hosts == {HEAD_IP, WORKER_IP}, hosts  # both hosts trained
    for ip in hosts:  # each host made one copy, whole, for all its trials
        assert len(list(caches[ip].glob(f"{PREFIX}-*/{MANIFEST}"))) == 1, ip
        assert not list(caches[ip].glob("*.partial")), ip
    for child in children:  # the data set is named by where it lives, from either host
        sources = {i.dataset.source for i in child.inputs.dataset_inputs if i.tags[0].key == DATASET_CONTEXT_TAG}
        assert sources == {f'{{"source": "{URI}"}}'}
