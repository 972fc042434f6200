"""Draining: on SIGTERM a host first stops looking ready, then stops serving.

uvicorn, on SIGTERM, closes its listening socket and its idle keep-alive connections at once. A
balancer that reuses those connections (HAProxy does) may send a request down one as it closes,
and its client sees the connection drop with no answer. With `GQL_BLOG_DRAIN_SECONDS` set, the
first SIGTERM only starts draining: `/readyz` answers 503 while every request is still served,
so the balancer's health checks take the host out of rotation; uvicorn's own graceful shutdown
(in-flight requests finish, `serve --graceful-timeout`) starts that many seconds later. A
second SIGTERM stops at once.

The delay wraps uvicorn's own SIGTERM handler, which uvicorn installs before the app starts and
restores after it stops; this works the same with one worker or several (each worker process
gets the SIGTERM its supervisor passes on).
"""

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger(__name__)


class Drain:
    """A process's drain on SIGTERM: `draining` once it has started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started_at: float | None = None

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def reason(self) -> str:
        """Why /readyz says 503 while draining."""
        elapsed = 0.0 if self.started_at is None else time.monotonic() - self.started_at
        left = max(0.0, self.seconds - elapsed)
        return (
            f"the server is stopping (SIGTERM): it still serves requests for {left:.1f} s "
            "(GQL_BLOG_DRAIN_SECONDS), then finishes those in flight and exits"
        )

    def install(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Delay the process's SIGTERM handler by `seconds`; returns what undoes it.

        Nothing to delay without a drain, off the main thread (no signal handler there), or
        when SIGTERM has no Python handler (the server does not stop on it gracefully)."""
        stop = signal.getsignal(signal.SIGTERM)
        if self.seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return lambda: None
        if not callable(stop):
            return lambda: None

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            if self.started_at is not None:
                stop(sig, frame)
                return
            self.started_at = time.monotonic()
            logger.info(
                "SIGTERM: draining for %g s (/readyz answers 503) before shutting down",
                self.seconds,
            )
            # A signal handler may only reach the loop through its thread-safe door.
            loop.call_soon_threadsafe(loop.call_later, self.seconds, stop, sig, None)

        signal.signal(signal.SIGTERM, on_sigterm)

        def uninstall() -> None:
            if signal.getsignal(signal.SIGTERM) is on_sigterm:
                signal.signal(signal.SIGTERM, stop)

        return uninstall
