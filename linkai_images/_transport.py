"""Transport choice: the connection pool under the client's httpx API.

The client bounds its in-flight requests itself (``max_concurrency``), so the
pool is sized to never make a request that got past that bound wait for a
connection: a pool timeout can then not happen, whatever the fan-out.
"""

from __future__ import annotations

import httpx

__all__ = ["DOWNLOAD_CONNECTIONS", "build_transport", "pool_limits"]

#: Connections kept beside the generation bound for image downloads.
DOWNLOAD_CONNECTIONS = 16


def pool_limits(max_concurrency: int) -> httpx.Limits:
    """Pool limits for a client that keeps at most ``max_concurrency`` requests in flight."""
    connections = max_concurrency + DOWNLOAD_CONNECTIONS
    return httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=30.0
    )


def build_transport(max_concurrency: int) -> httpx.AsyncBaseTransport:
    """The transport a client uses when none is injected."""
    return httpx.AsyncHTTPTransport(limits=pool_limits(max_concurrency), retries=0)
