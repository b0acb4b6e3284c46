"""FailureKind: every failure a batch can end with falls in the kind whose advice fits it."""

from __future__ import annotations

import httpx
import pytest

from linkai_images import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    BatchAbortedError,
    BatchItem,
    CheckpointError,
    CostLimitError,
    DownloadError,
    FailureKind,
    ImageRequest,
    InsufficientCreditsError,
    LimiterError,
    RequestValidationError,
    UncertainRequestError,
)
from linkai_images._exceptions import status_error_class


def status(code: int) -> Exception:
    """The SDK's error for an HTTP status, as the client raises it."""
    response = httpx.Response(code, request=httpx.Request("POST", "https://api.test/v1/x"))
    return status_error_class(code)("message", response=response)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (status(503), FailureKind.TRANSIENT),
        (status(500), FailureKind.TRANSIENT),
        (status(429), FailureKind.TRANSIENT),
        (APIConnectionError("refused", request_sent=False), FailureKind.TRANSIENT),
        (DownloadError("cdn 404", url="https://cdn.test/a.png"), FailureKind.TRANSIENT),
        (PermissionError(13, "Permission denied"), FailureKind.TRANSIENT),
        (CheckpointError("not sent: disk full"), FailureKind.TRANSIENT),
        (UncertainRequestError(), FailureKind.UNCERTAIN),
        (APITimeoutError("read timed out", request_sent=True), FailureKind.UNCERTAIN),
        (APIConnectionError("dropped", request_sent=True), FailureKind.UNCERTAIN),
        (APIResponseValidationError("200 without images"), FailureKind.UNCERTAIN),
        (status(409), FailureKind.REFUSED),
        (status(402), FailureKind.REFUSED),
        (status(401), FailureKind.ACCOUNT),
        (status(406), FailureKind.ACCOUNT),
        (BatchAbortedError(status(406)), FailureKind.ACCOUNT),  # type: ignore[arg-type]
        (CostLimitError(max_cost=1.0, spent=0.9, price=0.2), FailureKind.ACCOUNT),
        (LimiterError("redis is unreachable"), FailureKind.TRANSIENT),
        (RequestValidationError("size '3K' is not offered"), FailureKind.INVALID),
        (status(400), FailureKind.INVALID),
        (status(413), FailureKind.INVALID),
        (TypeError("prompt must be a string"), FailureKind.INVALID),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_each_failure_has_its_kind(error: Exception, kind: FailureKind) -> None:
    """What a rerun can do about a failure decides its kind."""
    assert kind == FailureKind.of(error)


def test_batch_items_carry_their_kind() -> None:
    """A BatchItem says whether it may have been billed, and its kind; a success has none."""
    request = ImageRequest(prompt="p")
    refused = status(406)
    assert isinstance(refused, InsufficientCreditsError)
    lost = BatchItem(index=0, request=request, error=refused)
    uncertain = BatchItem(index=1, request=request, error=UncertainRequestError("X: y"))
    assert (FailureKind.ACCOUNT, False) == (lost.failure_kind, lost.uncertain)
    assert (FailureKind.UNCERTAIN, True) == (uncertain.failure_kind, uncertain.uncertain)
    assert "an earlier run sent this request and got no usable answer (X: y)" in str(
        uncertain.error
    )
