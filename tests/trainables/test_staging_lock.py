"""What a trial does while another process on its node copies the data (trainables.staging), without a server."""

from __future__ import annotations

import fcntl

import pytest

from trainables import staging


def test_a_trial_waits_a_bounded_time_for_another_processs_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "LOCK_WAIT_S", 0.5)
    uri = "s3://bucket/data/shapes"
    with open(staging.lock_file(uri, tmp_path), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process's copy, still going
        with pytest.raises(staging.StagingError, match="has been copying s3://bucket/data/shapes for 0 s"):
            staging.stage(uri, tmp_path)


@pytest.mark.parametrize(
    ("root", "remote"),
    [("s3://b/x", True), ("gs://b/x", True), ("file:///data", False), ("data", False), ("/abs/data", False)],
)
def test_which_roots_are_on_shared_storage(root, remote):
    assert staging.is_remote(root) == remote


def test_a_credential_in_the_uri_is_refused_before_anything_is_listed():
    from trainables.config import DataSection
    from trainables.data import DataError
    from trainables.data_check import check_data

    with pytest.raises(DataError, match=r"data.root s3://AKIA:\*\*\*@bucket/x holds a credential") as e:
        check_data(DataSection(name="imagefolder", root="s3://AKIA:s3cret@bucket/x"))
    assert "s3cret" not in str(e.value)
