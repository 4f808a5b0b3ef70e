"""An RQ worker for tests that run queued jobs in burst mode, in the test process."""

from __future__ import annotations

from rq import SimpleWorker


class BurstWorker(SimpleWorker):
    """A burst worker without RQ's pub/sub listener: nothing sends it commands, and
    joining that listener's thread at the end costs up to a second per run."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass
