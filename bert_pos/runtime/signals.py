"""Stop requests: SIGTERM (preemption) and SIGINT (Ctrl-C) end the run after a whole step."""

import logging
import signal
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)


class StopRequests:
    """SIGTERM and SIGINT ask the loop to stop after the current optimizer step; a second
    SIGINT stops at once (the default handler is back)."""

    def __init__(self):
        self.requested: str | None = None

    def _handle(self, number, frame) -> None:
        self.requested = signal.Signals(number).name
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.warning("%s: stopping after this step (Ctrl-C again to stop now)", self.requested)

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # handlers can only be installed in the main thread
            return
        previous = {n: signal.signal(n, self._handle) for n in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
