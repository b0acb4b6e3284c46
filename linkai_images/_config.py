"""Defaults and the small value types that configure a client."""

from __future__ import annotations

import os

import httpx

from ._exceptions import LinkAIError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "USER_AGENT",
    "mask_secret",
    "resolve_api_key",
    "resolve_base_url",
    "to_timeout",
]

ENV_API_KEY = "LINKAI_API_KEY"
ENV_BASE_URL = "LINKAI_BASE_URL"
DEFAULT_BASE_URL = "https://api.link-ai.tech/v1"

#: Connecting is quick or broken; generating takes tens of seconds, minutes at 4K.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = httpx.Timeout(connect=DEFAULT_CONNECT_TIMEOUT, read=600.0, write=120.0, pool=None)
DEFAULT_MAX_RETRIES = 2
#: Requests one client keeps in flight at once, across all tasks.
DEFAULT_MAX_CONCURRENCY = 64


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
