from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

# The reference fixtures (computed from the official code) live beside the checkout, in ../shared/reference.
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def reference() -> Path:
    if not (REFERENCE / "t2t_state_dict_manifest.json").is_file():
        pytest.fail(f"reference fixtures not found in {REFERENCE}: clone the project with ../shared beside it")
    return REFERENCE


@pytest.fixture(scope="session")
def manifest(reference: Path) -> dict:
    return json.loads((reference / "t2t_state_dict_manifest.json").read_text())


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray of 2 CPUs on loopback, no dashboard, stopped at the end of the session (what it started)."""
    import ray

    from search.run import local_ray

    root = Path(__file__).resolve().parents[1]
    local_ray(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": str(root)}})
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
