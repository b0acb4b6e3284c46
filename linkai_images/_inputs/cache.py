"""Encoded reference images of one client, shared by every request that uses them.

A batch of 200 requests on one 10 MB product photo reads and encodes it once:
every request's body points at the same encoded bytes (``body.py``), which
stay cached for as long as any request holds them, and after that while the
cache's byte bound allows (least recently used first out).

Keys, so that the same content is found without reading it again:

- a file path: the path with the file's device, inode, size, mtime and ctime
  (``os.stat``; the identity stored is ``fstat`` of the descriptor read, so a
  file replaced while it was read is not stored under the old name);
- ``bytes`` and ``str`` (immutable): the object itself, which the entry keeps
  alive, so its ``id`` cannot be reused while the entry exists;
- anything else (a ``bytearray``, a file object, a PIL image) has no cheap
  name: it is read (or saved) each time, and its content's SHA-256 finds the
  encoding of earlier reads, so only the encode is shared.

Every content read is also filed under its SHA-256, so two paths (or a path
and a ``bytes``) with equal content share one encoding. Concurrent requests
for an image being encoded wait for that encode instead of starting their
own. Reads, hashing and encoding run in worker threads, in slices
(``local.py``, ``b64.py``); the bookkeeping here runs on the event loop only.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable, Hashable

import anyio
import attrs

__all__ = ["DEFAULT_IMAGE_CACHE_BYTES", "CachedImage", "ImageCache", "ImageSource", "Loaded"]

#: The default byte bound of a client's encoded images kept while no request uses them.
DEFAULT_IMAGE_CACHE_BYTES = 256 * 2**20
#: Distinct images read and encoded at once. Each holds its raw bytes and two copies
#: of its base64 (slices, then joined) until done: 16 distinct 10 MB images at once
#: would hold 570 MB for a moment. The encode's slices hold the GIL, so a second
#: encode beside the first gains little and makes the event loop wait for the GIL
#: twice as often: one at a time, 16 distinct images showed 7-8 ms of loop lag
#: against 11 ms for two (benchmarks/README.md, "Event-loop lag").
_LOADS_AT_ONCE = 1


@attrs.frozen
class Loaded:
    """What a source's blocking ``load`` returns.

    Attributes:
        data: the image's bytes to encode, or the finished body bytes when the
            source has no ``encode`` step.
        key: the key the content was actually read under, when it differs
            from the one asked for (a file changed since its ``stat``).
    """

    data: bytes | memoryview
    key: Hashable | None = None


@attrs.frozen
class ImageSource:
    """How to get one reference image's encoded form, and what names it.

    Attributes:
        key: names the content without reading it; ``None`` when only reading
            tells (then the content's hash does).
        owner: the object a key made of its ``id`` refers to; the entry keeps
            it alive.
        load: blocking: reads the data (runs in a worker thread).
        encode: blocking: turns loaded data into the body's bytes; ``None``
            when ``load`` returns them already.
    """

    key: Hashable | None
    load: Callable[[], Loaded]
    encode: Callable[[bytes | memoryview], bytes] | None = None
    owner: object = None


class CachedImage:
    """One encoded image: its bytes, the keys that find it, the requests using it."""

    __slots__ = ("data", "keys", "owners", "users")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.keys: list[Hashable] = []
        # The objects whose id() is among the keys: alive as long as the keys are.
        self.owners: list[object] = []
        self.users = 0


class _Loading:
    """Requests waiting for a load of the same key."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = anyio.Event()


class ImageCache:
    """Encoded images by content, bounded in bytes while unused.

    Args:
        max_bytes: encoded bytes kept for images no request is using; images
            in use are never dropped, whatever their size. ``0`` keeps an
            image only while requests use it.
    """

    def __init__(self, max_bytes: int = DEFAULT_IMAGE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._by_key: dict[Hashable, CachedImage] = {}
        # Unused entries, least recently released first; in-use ones are not here.
        self._idle: collections.OrderedDict[int, CachedImage] = collections.OrderedDict()
        self._idle_bytes = 0
        self._loading: dict[Hashable, _Loading] = {}
        self._workers = anyio.CapacityLimiter(_LOADS_AT_ONCE)

    def __repr__(self) -> str:
        images = {id(entry): entry for entry in self._by_key.values()}
        held = sum(len(entry.data) for entry in images.values())
        return (
            f"<ImageCache {len(images)} image(s), {held:,} bytes, "
            f"max_bytes={self.max_bytes:,} while unused>"
        )

    @property
    def nbytes(self) -> int:
        """Encoded bytes held, in use or not."""
        images = {id(entry): entry for entry in self._by_key.values()}
        return sum(len(entry.data) for entry in images.values())

    async def acquire(self, source: ImageSource) -> CachedImage:
        """The encoded image of ``source``, loading it unless it is known; marked in use.

        Every ``acquire`` must be matched by one ``release``.

        Raises:
            RequestValidationError: the image could not be read or encoded.
        """
        key = source.key
        if key is not None:
            entry = await self._find(key)
            if entry is not None:
                return self._use(entry)
            loading = self._loading[key] = _Loading()
            try:
                return await self._load(source)
            finally:
                del self._loading[key]
                loading.done.set()
        return await self._load(source)

    def release(self, entry: CachedImage) -> None:
        """A request no longer uses ``entry``; past the bound, unused images are dropped."""
        entry.users -= 1
        if entry.users:
            return
        self._idle[id(entry)] = entry
        self._idle_bytes += len(entry.data)
        while self._idle_bytes > self.max_bytes and self._idle:
            _, oldest = self._idle.popitem(last=False)
            self._idle_bytes -= len(oldest.data)
            for key in oldest.keys:
                del self._by_key[key]
            oldest.keys.clear()
            oldest.owners.clear()

    async def _find(self, key: Hashable) -> CachedImage | None:
        """The entry under ``key``, after waiting for a load of it that is under way."""
        while True:
            entry = self._by_key.get(key)
            if entry is not None:
                return entry
            loading = self._loading.get(key)
            if loading is None:
                return None
            # The load may fail (then this request tries on its own) or succeed.
            await loading.done.wait()

    async def _load(self, source: ImageSource) -> CachedImage:
        async with self._workers:  # the raw bytes live until this block ends
            return await self._load_and_encode(source)

    async def _load_and_encode(self, source: ImageSource) -> CachedImage:
        loaded = await anyio.to_thread.run_sync(source.load)
        key = source.key if loaded.key is None else loaded.key
        encode = source.encode
        if encode is None:
            finished = CachedImage(bytes(loaded.data))
            self._file(finished, key, source.owner)
            return self._use(finished)
        digest = ("sha256", await anyio.to_thread.run_sync(_sha256, loaded.data))
        entry = await self._find(digest)
        if entry is None:
            loading = self._loading[digest] = _Loading()
            try:
                entry = CachedImage(await anyio.to_thread.run_sync(encode, loaded.data))
                self._file(entry, digest, None)
            finally:
                del self._loading[digest]
                loading.done.set()
        self._file(entry, key, source.owner)
        return self._use(entry)

    def _file(self, entry: CachedImage, key: Hashable | None, owner: object) -> None:
        if key is None or key in self._by_key:
            return
        self._by_key[key] = entry
        entry.keys.append(key)
        if owner is not None:
            entry.owners.append(owner)

    def _use(self, entry: CachedImage) -> CachedImage:
        if entry.users == 0:
            idle = self._idle.pop(id(entry), None)
            if idle is not None:
                self._idle_bytes -= len(idle.data)
        entry.users += 1
        return entry


def _sha256(data: bytes | memoryview) -> bytes:
    # hashlib releases the GIL while hashing a large buffer.
    return hashlib.sha256(data).digest()
