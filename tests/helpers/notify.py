"""A fake $NOTIFY_SOCKET for tests: records every datagram the agent sends, as systemd would get it."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass

from tests.helpers import wait_for


@dataclass(frozen=True)
class Datagram:
    at: float  # time.monotonic() when received
    fields: dict[str, str]


class NotifySocket:
    """A fake $NOTIFY_SOCKET, bound to a file system path or to an abstract name (`@...`)."""

    def __init__(self, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dir: str | None = None
        if abstract:
            name = f"mmw-notify-{os.getpid()}-{secrets.token_hex(4)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="mmw-")
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.datagrams: list[Datagram] = []
        self.malformed: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            received = time.monotonic()
            lines = data.decode(errors="replace").split("\n")
            with self._lock:
                if all("=" in line for line in lines):
                    fields = dict(line.split("=", 1) for line in lines)
                    self.datagrams.append(Datagram(received, fields))
                else:
                    self.malformed.append(data)

    def snapshot(self) -> list[Datagram]:
        with self._lock:
            return list(self.datagrams)

    def with_field(self, key: str, value: str | None = None) -> list[Datagram]:
        return [d for d in self.snapshot() if key in d.fields and (value is None or d.fields[key] == value)]

    def wait(self, key: str, value: str | None = None, *, after: int = 0, timeout: float = 20.0) -> Datagram:
        """The first datagram with key (=value) among those received after the first `after` ones."""

        def found() -> Datagram | None:
            for d in self.snapshot()[after:]:
                if key in d.fields and (value is None or d.fields[key] == value):
                    return d
            return None

        return wait_for(found, timeout, f"{key}={value or '...'} on the notify socket")  # type: ignore[no-any-return]

    def seen(self, field: str) -> bool:
        """Whether a datagram carried `field`, e.g. "READY=1"."""
        key, _, value = field.partition("=")
        return bool(self.with_field(key, value))

    def close(self) -> None:
        self._closed = True
        self._thread.join(1)
        self.sock.close()
        if self.dir is not None:
            try:
                os.unlink(self.address)
                os.rmdir(self.dir)
            except OSError:
                pass
