"""What the driver prints (search.experiment.console): the libraries' notices only with --verbose."""

from __future__ import annotations

import logging
import os

import optuna
import pytest

from search.experiment import console


@pytest.fixture
def ray_handler(monkeypatch):
    """The "ray" logger's own handler; its filters, the environment and Optuna's verbosity as before, afterwards."""
    import ray  # noqa: F401 -- installs the handler

    handler = logging.getLogger("ray").handlers[0]
    monkeypatch.setattr(handler, "filters", list(handler.filters))
    for name in console.QUIET_ENVIRONMENT:
        monkeypatch.setenv(name, "")  # recorded, so that what configure sets is undone
        monkeypatch.delenv(name)
    verbosity = optuna.logging.get_verbosity()
    yield handler
    optuna.logging.set_verbosity(verbosity)


def _shown(handler: logging.Handler, message: str, error: Exception | None = None) -> bool:
    record = logging.LogRecord("ray.x", logging.WARNING, __file__, 1, message, None, None)
    record.exc_info = (type(error), error, None) if error else None
    return bool(handler.filter(record))


TOKEN = "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out."
RACE = OSError("Failed to open local file '/tmp/x/.1234-tmp-search_gen_state-2026.pkl'. Detail: [errno 2]")


def test_quiet_hides_the_notices_and_the_upload_race_but_not_other_warnings(ray_handler, monkeypatch):
    console.configure(verbose=False)
    console.filter_ray(verbose=False)
    assert not _shown(ray_handler, TOKEN) and not _shown(ray_handler, "Saving experiment state failed", RACE)
    assert _shown(ray_handler, "Saving experiment state failed", OSError("No space left on device"))
    assert _shown(ray_handler, "A worker died or was killed while executing a task")
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    assert {k: os.environ.get(k) for k in console.QUIET_ENVIRONMENT} == console.QUIET_ENVIRONMENT


def test_verbose_shows_the_notices(ray_handler):
    console.filter_ray(verbose=False)  # as a search run earlier in the process leaves it
    console.configure(verbose=True)
    console.filter_ray(verbose=True)
    assert _shown(ray_handler, TOKEN)
    assert not _shown(ray_handler, "Saving experiment state failed", RACE)  # never worth a traceback
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
