"""One line per error for the command line: what failed and what to do, never the key."""

from __future__ import annotations

from .._config import redact_secret
from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ModelNotAvailableError,
    UncertainRequestError,
)

__all__ = ["describe_error", "redact"]


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (the API key) masked as the SDK masks it everywhere else.

    A key shorter than four characters is left alone: masking it would mangle
    ordinary words of the message.
    """
    if secret and len(secret) >= 4:
        return redact_secret(text, secret)
    return text


def describe_error(exc: BaseException) -> str:
    """One line for a user: what failed and, where it helps, what to do."""
    if isinstance(exc, APIStatusError):
        text = f"the API refused the request ({exc.status_code}): {exc.message}"
        if isinstance(exc, AuthenticationError):
            text += "; check --api-key or LINKAI_API_KEY"
        elif isinstance(exc, ModelNotAvailableError):
            text += "; `linkai-images models` lists the known models"
        return text
    if isinstance(exc, APIConnectionError):
        return f"no answer from the API: {exc.message}"
    if isinstance(exc, UncertainRequestError):
        if exc.previous_error is None:
            return "sent by a run that stopped before the answer"
        return f"sent by an earlier run, which got no usable answer ({exc.previous_error})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__
