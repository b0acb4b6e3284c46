"""Helpers shared by the test modules (importable: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import anyio

#: ``cli(*args)`` (the fixture in tests/cli/conftest.py): (status, stdout, stderr).
Run = Callable[..., tuple[int, str, str]]


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition()`` until true, for at most 10 s."""
    with anyio.fail_after(10):
        # The fake's counters move in its server thread: there is no event to wait on.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


class RawOrigin:
    """A loopback server that reads one request per connection, answers ``reply``, closes."""

    def __init__(self) -> None:
        self.reply = b""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def close(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                try:
                    self._read_request(connection)
                    connection.sendall(self.reply)
                    connection.shutdown(socket.SHUT_WR)
                    while connection.recv(65536):  # let the client close first: no RST
                        pass
                except OSError:
                    pass

    @staticmethod
    def _read_request(connection: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return
            body += chunk


class ThreadedOrigin:
    """A threaded ``http.server`` on a free loopback port; ``with`` yields its origin."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def error_line(err: str) -> str:
    """The single line of a user error on stderr (and proof that there is only one)."""
    lines = err.strip().splitlines()
    assert 1 == len(lines), err
    assert lines[0].startswith("linkai-images: error: "), err
    return lines[0]


def write_jsonl(path: Path, *lines: object) -> Path:
    """A JSON Lines file; ``""`` stays a blank line."""
    path.write_text("\n".join("" if line == "" else json.dumps(line) for line in lines) + "\n")
    return path


def pngs(directory: Path) -> list[str]:
    """The names of the PNG files in ``directory``, sorted."""
    return sorted(p.name for p in directory.glob("*.png"))


def journal_records(path: Path) -> list[dict[str, object]]:
    """Every record of a checkpoint journal, in file order."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
