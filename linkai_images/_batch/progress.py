"""Batch progress: one frozen event per step of a request, and the tqdm bar that shows them.

A batch reports to at most one handler, a callable taking a ``ProgressEvent``.
``progress=True`` picks ``TqdmProgress``, a ``tqdm.auto`` bar (a widget in
Jupyter, text in a terminal); tqdm is the ``progress`` extra and is imported
only when a bar is asked for. With no handler the batch counts nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from .._models import ImageResponse
    from .._retry import RetryEvent

__all__ = [
    "ProgressArg",
    "ProgressEvent",
    "ProgressHandler",
    "ProgressKind",
    "Tracker",
    "TqdmProgress",
    "make_tracker",
]

ProgressKind = Literal["started", "retried", "succeeded", "failed", "skipped"]

#: What ``progress=`` takes: ``True`` for a tqdm bar, a callable, or ``None``/``False``.
ProgressHandler = Callable[["ProgressEvent"], object]
ProgressArg = bool | ProgressHandler | None

_INSTALL_HINT = "pip install 'linkai-images[progress]'"


@attrs.frozen(kw_only=True)
class ProgressEvent:
    """One step of one request of a batch, with the batch's totals so far.

    ``kind`` is one of:

    - ``"started"``: the request was sent (its first attempt);
    - ``"retried"``: an attempt failed and another follows (``retry`` says why);
    - ``"succeeded"``: the request returned ``response``;
    - ``"failed"``: the request ended with ``error`` (a request that was never
      sent because the batch stopped on an account error, or that failed its
      checks, ends here too, with that error);
    - ``"skipped"``: nothing was sent because the checkpoint already held the
      result, which is ``response``.

    Attributes:
        kind: what happened.
        index: the request's position in the input.
        total: the number of requests, when known (``None`` for a lazy input).
        started: requests sent so far.
        in_flight: requests sent and not yet settled.
        succeeded: requests that returned images in this run.
        failed: requests that ended with an error.
        skipped: requests answered from the checkpoint.
        retried: retries made so far, over all requests.
        response: the response, for ``succeeded`` and ``skipped``.
        error: the exception, for ``failed``.
        retry: the retry record, for ``retried``.
    """

    kind: ProgressKind
    index: int
    total: int | None
    started: int
    in_flight: int
    succeeded: int
    failed: int
    skipped: int
    retried: int
    response: ImageResponse | None = None
    error: BaseException | None = None
    retry: RetryEvent | None = None

    @property
    def done(self) -> int:
        """Requests settled so far: succeeded, failed and skipped."""
        return self.succeeded + self.failed + self.skipped


class Tracker:
    """The counters of one batch, turned into ``ProgressEvent`` for a handler."""

    __slots__ = ("_closed", "_handler", "failed", "in_flight", "retried", "skipped", "started",
                 "succeeded", "total")  # fmt: skip

    def __init__(self, handler: ProgressHandler, total: int | None) -> None:
        self._handler = handler
        self._closed = False
        self.total = total
        self.started = self.in_flight = self.succeeded = self.failed = 0
        self.skipped = self.retried = 0

    def _emit(
        self,
        kind: ProgressKind,
        index: int,
        *,
        response: ImageResponse | None = None,
        error: BaseException | None = None,
        retry: RetryEvent | None = None,
    ) -> None:
        self._handler(
            ProgressEvent(
                kind=kind,
                index=index,
                total=self.total,
                started=self.started,
                in_flight=self.in_flight,
                succeeded=self.succeeded,
                failed=self.failed,
                skipped=self.skipped,
                retried=self.retried,
                response=response,
                error=error,
                retry=retry,
            )
        )

    def on_started(self, index: int) -> None:
        self.started += 1
        self.in_flight += 1
        self._emit("started", index)

    def on_retried(self, index: int, retry: RetryEvent) -> None:
        self.retried += 1
        self._emit("retried", index, retry=retry)

    def on_succeeded(self, index: int, response: ImageResponse) -> None:
        self.succeeded += 1
        self.in_flight -= 1
        self._emit("succeeded", index, response=response)

    def on_failed(self, index: int, error: BaseException, *, sent: bool) -> None:
        self.failed += 1
        if sent:
            self.in_flight -= 1
        self._emit("failed", index, error=error)

    def on_skipped(self, index: int, response: ImageResponse) -> None:
        self.skipped += 1
        self._emit("skipped", index, response=response)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._handler, "close", None)
        if callable(close):
            close()


class TqdmProgress:
    """A ``tqdm.auto`` progress bar for a batch: ``progress=True``, or pass one yourself.

    The bar advances as requests settle; its postfix shows how many
    succeeded (``done``, checkpoint hits included), ``failed`` and were
    ``retried``. It is opened on the first event (with the batch's total when
    known) and closed when the batch ends.

    Args:
        file: where the bar is written (default: tqdm's, stderr).
        desc: the bar's label.
        **tqdm_options: more keyword arguments for ``tqdm.auto.tqdm``.

    Raises:
        ImportError: tqdm is not installed (``pip install 'linkai-images[progress]'``).
    """

    def __init__(
        self, *, file: IO[str] | None = None, desc: str = "images", **tqdm_options: Any
    ) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError as exc:
            raise ImportError(
                f"a progress bar needs tqdm; install it with {_INSTALL_HINT}"
            ) from exc
        self._tqdm = tqdm
        self._options: dict[str, Any] = {"desc": desc, "unit": "img", **tqdm_options}
        if file is not None:
            self._options["file"] = file
        self._bar: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        """Show one event on the bar."""
        if self._bar is None:
            self._bar = self._tqdm(total=event.total, **self._options)
        if event.kind in ("succeeded", "failed", "skipped"):
            self._bar.update(1)
        elif event.kind != "retried":
            return
        self._bar.set_postfix(
            done=event.succeeded + event.skipped,
            failed=event.failed,
            retried=event.retried,
            refresh=False,
        )

    def close(self) -> None:
        """Close the bar (called by the batch when it ends)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_tracker(progress: ProgressArg, total: int | None) -> Tracker | None:
    """The tracker for ``progress=``, or ``None`` when nothing is to be reported.

    ``True`` without tqdm installed warns (naming the extra to install) and
    runs the batch without a bar: a missing bar is no reason to stop a batch.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            handler: ProgressHandler = TqdmProgress()
        except ImportError:
            warnings.warn(
                f"progress=True needs tqdm, which is not installed; running without a "
                f"progress bar. Install it with {_INSTALL_HINT}",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        return Tracker(handler, total)
    if not callable(progress):
        raise TypeError(
            f"progress must be True, False, None or a callable taking a ProgressEvent, "
            f"not {type(progress).__name__}"
        )
    return Tracker(progress, total)
