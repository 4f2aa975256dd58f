"""Every node of a Ray cluster sees the search's storage path, checked before any trial starts."""

from __future__ import annotations

import uuid
from pathlib import Path


class StorageError(RuntimeError):
    """A node of the cluster cannot see the search's storage path; the message names the nodes."""

    pass


def _read_marker(uri: str) -> str:
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as f:
        return f.read().decode()


def check_storage(storage_path: str, timeout_s: float = 60.0) -> None:
    """Every alive node of the connected Ray cluster reads a marker this driver writes under ``storage_path``.

    Tune needs the storage path shared (S3, or NFS at the same path on every node); a node that cannot see it
    fails every trial it gets. Raises ``StorageError`` naming the nodes that cannot.
    """
    import ray
    from pyarrow import fs
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    uri = storage_path if "://" in storage_path else str(Path(storage_path).resolve())
    token = uuid.uuid4().hex
    try:
        filesystem, root = fs.FileSystem.from_uri(uri)
        filesystem.create_dir(root, recursive=True)
        marker = f"{root.rstrip('/')}/.t2t-storage-check-{token}"
        with filesystem.open_output_stream(marker) as f:
            f.write(token.encode())
    except Exception as e:  # bad URI, no credentials, read-only: all mean this driver cannot use the storage
        raise StorageError(f"cannot write to storage path {storage_path}: {str(e).splitlines()[0][:300]}") from None
    marker_uri = f"{uri.rstrip('/')}/.t2t-storage-check-{token}"
    read = ray.remote(num_cpus=0, max_retries=0)(_read_marker)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        pending = {
            read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                marker_uri
            ): n["NodeManagerAddress"]
            for n in nodes
        }
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
        blind = []
        for ref in ready:
            try:
                ok = ray.get(ref) == token
            except Exception:
                ok = False
            if not ok:
                blind.append(pending[ref])
        blind += [f"{pending[ref]} (no answer in {timeout_s:.0f} s)" for ref in late]
    finally:
        filesystem.delete_file(marker)
    if blind:
        raise StorageError(
            f"storage path {storage_path} is not visible from node(s) {', '.join(sorted(blind))}: every node needs "
            "the same shared storage; give --storage-path s3://... or an NFS mount present at that path on every node"
        )
