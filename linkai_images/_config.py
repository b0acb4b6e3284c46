"""Defaults and the small value types that configure a client."""

from __future__ import annotations

import os

import httpx

from ._exceptions import LinkAIError

__all__ = [
    "PAUSE_STATUSES",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_LIMITER_PREFIX",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_LIMITER_URL",
    "USER_AGENT",
    "mask_secret",
    "mask_url",
    "redact_secret",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_limiter_url",
    "to_timeout",
]

ENV_API_KEY = "LINKAI_API_KEY"
ENV_BASE_URL = "LINKAI_BASE_URL"
DEFAULT_BASE_URL = "https://api.link-ai.tech/v1"
ENV_LIMITER_URL = "LINKAI_LIMITER_URL"
#: The prefix of a shared limiter's Redis keys.
DEFAULT_LIMITER_PREFIX = "linkai-images"

#: Statuses whose ``Retry-After`` pauses the model's new attempts client-wide (``_pacing``).
PAUSE_STATUSES = frozenset({429, 503})

#: Connecting is quick or broken; generating takes tens of seconds, minutes at 4K.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = httpx.Timeout(connect=DEFAULT_CONNECT_TIMEOUT, read=600.0, write=120.0, pool=None)
DEFAULT_MAX_RETRIES = 2
#: Requests one client keeps in flight at once, across all tasks.
DEFAULT_MAX_CONCURRENCY = 64
#: The default cap on one local reference image, in bytes (20 MiB), before base64.
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024


def _user_agent() -> str:
    from ._version import __version__

    return f"linkai-images/{__version__} httpx/{httpx.__version__}"


USER_AGENT = _user_agent()


def resolve_api_key(api_key: str | None) -> str:
    """The key given, else ``$LINKAI_API_KEY``.

    Raises:
        LinkAIError: neither is set (the message names the variable).
    """
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if not key or not key.strip():
        raise LinkAIError(
            f"no API key: pass api_key=... to the client or set the {ENV_API_KEY} "
            "environment variable"
        )
    return key.strip()


def resolve_base_url(base_url: str | httpx.URL | None) -> httpx.URL:
    """The base URL given, else ``$LINKAI_BASE_URL``, else the platform's; always ends in ``/``."""
    if base_url is not None:
        raw = str(base_url)
    else:
        raw = os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    url = httpx.URL(raw)
    if url.scheme not in ("http", "https") or not url.host:
        raise LinkAIError(f"base_url {raw!r} is not an http(s) URL")
    if not url.raw_path.endswith(b"/"):
        url = url.copy_with(raw_path=url.raw_path + b"/")
    return url


def resolve_limiter_url(limiter_url: str | None) -> str | None:
    """The shared limiter's URL given, else ``$LINKAI_LIMITER_URL``, else ``None``.

    Raises:
        LinkAIError: the URL is not ``redis://``, ``rediss://`` or ``unix://``.
    """
    url = limiter_url if limiter_url is not None else os.environ.get(ENV_LIMITER_URL) or None
    if url is None:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss", "unix"):
        where = "limiter_url" if limiter_url is not None else f"${ENV_LIMITER_URL}"
        raise LinkAIError(
            f"{where} {mask_url(url)!r} is not a Redis URL; write redis://host:6379/0 "
            "(rediss:// for TLS, unix:///path/to/socket)"
        )
    return url


def mask_url(url: str) -> str:
    """``url`` with any password replaced by stars, for messages and reprs."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}://{user}:****@{host}" if user else f"{head}://****@{host}"


def to_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    """An ``httpx.Timeout`` from float seconds (the read timeout; connect stays short)."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None, connect=DEFAULT_CONNECT_TIMEOUT)
    if timeout <= 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    return httpx.Timeout(timeout, connect=min(timeout, DEFAULT_CONNECT_TIMEOUT), pool=None)


def mask_secret(secret: str) -> str:
    """A key shown as its first four characters and stars, for reprs."""
    return f"{secret[:4]}****" if len(secret) > 8 else "****"


def redact_secret(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` shown as ``mask_secret(secret)``.

    For text the SDK repeats from a server or a transport (an error message
    that echoes the key), before it reaches an exception, a log line, a
    checkpoint or the terminal.
    """
    if not secret or secret not in text:
        return text
    return text.replace(secret, mask_secret(secret))
