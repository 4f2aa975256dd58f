"""Ctrl-C and SIGTERM end a search the same graceful way: Tune stops, saves its state, and the driver closes the
runs it has open as interrupted.

SIGTERM is what ``timeout``, ``docker stop``, Kubernetes and Slurm send; Tune itself only catches SIGINT. Tune's
own SIGINT handler is turned off (``TUNE_DISABLE_SIGINT_HANDLER``) so that one handler sees both signals and
remembers which came: it asks Tune to stop through the SIGUSR1 handler Tune installs while it runs. Before Tune
runs (Ray starting, the parent run opening) a signal ends the driver at once with ``KeyboardInterrupt``. A second
signal stops waiting for Tune's last save.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal's number, as a shell reports it


class GracefulStop:
    """Installed for the driver's lifetime; ``received`` names the first signal (None: none came)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def reinstall(self) -> None:
        """Take the signals back after ``ray.init``: Ray's core worker installs its own SIGTERM handler in the
        driver (a stack dump, then an abort)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        """130 after SIGINT, 143 after SIGTERM."""
        return EXIT_CODES[self.received or "SIGINT"]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signal.Signals(signum).name
        tune_listens = signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        if first and tune_listens:
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune's handler: stop the trials, save the state, return
        else:
            raise KeyboardInterrupt
