"""HTTP: the one boundary between the network and the SDK's error tree.

Owns: a single attempt of a generation request and the mapping of every
httpx/aiohttp/JSON failure to a ``LinkAIError`` (``endpoint``), the choice of
transport for the running event loop (``transport``), the O(1) connection pool
(``pool``) over the SDK's own HTTP/1.1 connections (``h1``), the aiohttp
transport for asyncio (``aio``), and request bodies streamed from shared pieces
(``stream``), and big answers parsed off the event loop (``answer``).

May import: ``_exceptions``, ``_config``. Never retries (one attempt is one
call), models, batches, the client or the command line.
"""
