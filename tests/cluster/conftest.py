from __future__ import annotations

import pytest

from tests.cluster.netns import Cluster


@pytest.fixture
def cluster(tmp_path):
    """Two namespace hosts, torn down by PID after the test whatever happens (see netns.py)."""
    hosts = Cluster(tmp_path)
    try:
        yield hosts.up()
    finally:
        hosts.down()
