"""The fake CDN: signed URLs for generated images, and the PNG files behind them.

A generated image's path carries its size and colour, masked and signed, so
the CDN needs no table of every image ever made (benchmarks make millions)
and an invented path still gets 404.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from ._png import make_png
from ._reply import Reply

__all__ = ["CDN_PATH_PREFIX", "Cdn"]

#: Where generated images live on the CDN origin.
CDN_PATH_PREFIX = "/user/generate/"


class Cdn:
    """Makes image paths and answers CDN requests; paths from another ``Cdn`` get 404."""

    def __init__(self) -> None:
        self._secret = os.urandom(16)

    def image_path(self, width: int, height: int, rgb: tuple[int, int, int]) -> str:
        """The CDN path (``/user/generate/<token>.png``) of a solid ``rgb`` PNG of this size."""
        nonce = os.urandom(5)
        plain = struct.pack(">HHBBB", width, height, *rgb)
        mac = hashlib.blake2b(nonce + plain, key=self._secret, digest_size=4).digest()
        hex_ = (nonce + _xor(plain, self._mask(nonce)) + mac).hex()
        return (
            f"{CDN_PATH_PREFIX}{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}.png"
        )

    def answer(self, method: str, target: str) -> Reply:
        """Answer one CDN request.

        Args:
            method: the HTTP method.
            target: the request target.

        Returns:
            The reply: the PNG, 404 for an unknown path, 405 for a method
            other than GET and HEAD.
        """
        image = self._decode_image_path(target.split("?", 1)[0])
        if method not in ("GET", "HEAD"):
            return Reply(405, (("content-type", "text/plain"), ("allow", "GET, HEAD")), b"")
        if image is None:
            return Reply(404, (("content-type", "text/plain"),), b"not found\n")
        return Reply(
            200,
            (("content-type", "image/png"), ("cache-control", "public, max-age=31536000")),
            make_png(*image),
            head=method == "HEAD",
        )

    def _mask(self, nonce: bytes) -> bytes:
        return hashlib.blake2b(nonce, key=self._secret, digest_size=7, person=b"mask").digest()

    def _decode_image_path(self, path: str) -> tuple[int, int, tuple[int, int, int]] | None:
        if not (path.startswith(CDN_PATH_PREFIX) and path.endswith(".png")):
            return None
        token = path[len(CDN_PATH_PREFIX) : -len(".png")].replace("-", "")
        try:
            raw = bytes.fromhex(token)
        except ValueError:
            return None
        if len(raw) != 16:
            return None
        nonce, masked, mac = raw[:5], raw[5:12], raw[12:]
        plain = _xor(masked, self._mask(nonce))
        expected = hashlib.blake2b(nonce + plain, key=self._secret, digest_size=4).digest()
        if not hmac.compare_digest(expected, mac):
            return None
        width, height, r, g, b = struct.unpack(">HHBBB", plain)
        return width, height, (r, g, b)


def _xor(data: bytes, mask: bytes) -> bytes:
    value = int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")
    return value.to_bytes(len(data), "big")
