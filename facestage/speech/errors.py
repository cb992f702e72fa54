"""Speech errors, shared by the worker client and the HTTP backend."""

from __future__ import annotations

from ..errors import FacestageError


class SpeechError(FacestageError, RuntimeError):
    """The speech engine failed (worker died, backend unreachable, engine error)."""


class WorkerDied(SpeechError):
    """The worker process exited or stopped answering in the middle of a request."""
