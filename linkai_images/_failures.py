"""What a failed request means for the next run: the five kinds of failure.

A batch's failures call for different actions. A 503 goes away on its own;
a request that timed out after it was sent may already be paid for; a
moderation refusal comes back the same way every time; a rejected key
fails every request until the account is fixed; a bad size is a typo.
``FailureKind.of(error)`` sorts an exception into one of these, so the
Python API (``BatchItem.failure_kind``, ``BatchError``) and the command
line's summary give the same advice.
"""

from __future__ import annotations

import enum

from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BatchAbortedError,
    ContentModerationError,
    CostLimitError,
    InsufficientCreditsError,
    ModelNotAvailableError,
    RequestValidationError,
    UncertainRequestError,
)

__all__ = ["FailureKind"]


class FailureKind(enum.Enum):
    """What a failed request needs before it can succeed.

    Members:
        TRANSIENT: a passing fault (503, 429, other 5xx, a connection that
            failed before the request left, a failed download or save, an
            unusable rate limiter or checkpoint file).
            Running the batch again retries it.
        UNCERTAIN: the request may have been generated and billed, but no
            result came back (an answer lost after the request was sent, a
            200 with a broken body, or an earlier run that was interrupted
            while it was in flight). It is not sent again unless asked
            (``resend_uncertain=True``, ``--resend-uncertain``).
        REFUSED: the platform refused it and will again: content moderation
            (409) or a model that does not exist or the account may not use
            (402). Change the prompt or the model.
        ACCOUNT: the key was rejected (401) or the credits ran out (406),
            or the request was not sent because of that, or because it would
            have passed the batch's spending cap (``CostLimitError``). Fix
            the account (or raise the cap), then run again.
        INVALID: the request itself is wrong (a value the model does not
            offer, an unreadable reference image, a 400). Fix it, then run
            again.
    """

    TRANSIENT = "transient"
    UNCERTAIN = "uncertain"
    REFUSED = "refused"
    ACCOUNT = "account"
    INVALID = "invalid input"

    @classmethod
    def of(cls, error: BaseException) -> FailureKind:
        """The kind of ``error``, the exception a request ended with.

        Args:
            error: any exception; those the SDK does not raise are
                ``TRANSIENT``, except ``TypeError`` / ``ValueError`` (bad
                arguments), which are ``INVALID``.

        Returns:
            The kind.
        """
        if isinstance(error, UncertainRequestError | APIResponseValidationError):
            return cls.UNCERTAIN
        if isinstance(error, APIConnectionError):
            return cls.UNCERTAIN if error.request_sent else cls.TRANSIENT
        if isinstance(
            error,
            AuthenticationError | InsufficientCreditsError | BatchAbortedError | CostLimitError,
        ):
            return cls.ACCOUNT
        if isinstance(error, ContentModerationError | ModelNotAvailableError):
            return cls.REFUSED
        if isinstance(error, RequestValidationError | BadRequestError):
            return cls.INVALID
        if isinstance(error, APIStatusError):
            # 429 and 5xx pass; another 4xx answers the request as sent, every time.
            status = error.status_code
            return cls.INVALID if 400 <= status < 500 and status != 429 else cls.TRANSIENT
        if isinstance(error, TypeError | ValueError):
            return cls.INVALID
        return cls.TRANSIENT
