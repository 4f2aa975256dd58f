"""MLflow writes queued by the search and delivered in order by one background thread.

Tune's event loop never waits for MLflow: a write is queued (and appended to the pending file,
``search.tracking.pending``) and returns. The thread delivers up to ``_BATCH`` writes at a time
(``search.tracking.writes.deliver``: one ``log_batch`` per run); while the store is away it retries with backoff,
with one warning per outage. What is still queued when the delivery closes stays in the pending file, for the next
driver of the search.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque

from contract.redact import redact
from search.tracking.pending import PendingWrites
from search.tracking.run_index import RunIndex
from search.tracking.writes import Write, deliver

log = logging.getLogger(__name__)

_BATCH = 32  # writes delivered together at most (writes.deliver): far below MLflow's 1,000 numbers a call
_BACKOFF_S = (1.0, 30.0)  # the first and the longest wait between retries while the store is away


class Delivery:
    """The queue of writes to ``index``'s runs, kept on disk in ``pending_file``, and the thread that delivers it."""

    def __init__(self, index: RunIndex, pending_file: str | None) -> None:
        self.index, self.pending_file = index, pending_file
        self._pending = PendingWrites(pending_file)
        self._queue: deque[Write] = deque()
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._busy = False  # the writer is applying the queue's first writes
        self._stopping = False
        self._outage_since: float | None = None

    @property
    def started(self) -> bool:
        """Whether the writer thread runs."""
        return self._writer is not None

    def start(self) -> None:
        """Queue the writes an earlier driver left undelivered, then start the writer."""
        left = self._pending.load()
        if left:
            log.info("delivering %d MLflow writes an earlier run of this search left undelivered", len(left))
        with self._wake:
            self._queue.extend(left)
            self._pending.start(list(self._queue))
        self._writer = threading.Thread(target=self._run, name="mlflow-writer", daemon=True)
        self._writer.start()

    def submit(self, write: Write) -> None:
        """Queue ``write`` (and append it to the pending file); returns at once."""
        with self._wake:
            self._queue.append(write)
            self._pending.append(write)
            self._wake.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until every queued write is delivered (``True``) or ``timeout_s`` passed (``False``)."""
        deadline = time.monotonic() + timeout_s
        with self._wake:
            while (self._queue or self._busy) and time.monotonic() < deadline:
                self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            return not (self._queue or self._busy)

    def stop(self) -> None:
        """Stop the writer after its current call (waiting 15 s at most for a call the store does not answer)."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=15)

    def keep_left(self) -> int:
        """Leave the writes not delivered in the pending file; how many there were."""
        with self._wake:  # a writer stuck in a call to the store still holds its writes in the queue
            left = len(self._queue)
            kept = self._pending.close(list(self._queue))
        if left:
            where = f"they are saved in {self.pending_file} and delivered by --resume" if kept else "they are lost"
            log.error("%d MLflow writes could not be delivered to %s; %s", left, redact(self.index.uri), where)
        return left

    def pending(self) -> int:
        """Writes not yet delivered, the batch in hand included."""
        return len(self._queue) + int(self._busy)

    def _run(self) -> None:
        delay = _BACKOFF_S[0]
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if not self._queue:
                    return
                writes, self._busy = list(itertools.islice(self._queue, _BATCH)), True
            try:
                deliver(writes, self.index)
            except Exception as e:  # the store is away (or refuses): keep the write, retry after a pause
                self._outage(e)
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
                    if self._stopping:
                        return
                    self._wake.wait(delay)
                delay = min(2 * delay, _BACKOFF_S[1])
                continue
            delay = _BACKOFF_S[0]
            with self._wake:
                for _ in writes:
                    self._queue.popleft()
                self._pending.delivered(len(writes), len(self._queue))
                self._busy = False
                self._wake.notify_all()
            self._recovered()

    def _outage(self, error: Exception) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "MLflow at %s is not answering (%s: %s); buffering, retrying in the background",
                redact(self.index.uri), type(error).__name__,
                redact(str(error).splitlines()[0][:200]) if str(error) else "",
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._outage_since is not None and not self._queue:
            log.warning(
                "MLflow at %s is back after %.0f s; buffered writes delivered",
                redact(self.index.uri), time.monotonic() - self._outage_since,
            )  # fmt: skip
            self._outage_since = None
