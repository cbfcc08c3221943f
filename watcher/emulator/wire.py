"""The request handler's plumbing that every endpoint shares: sending an answer, draining a body,
ending a connection without an answer."""

from __future__ import annotations

import contextlib
import http.server
import socket
import struct

from watcher.emulator.bodies import discard_body
from watcher.emulator.decision import Answer, reason_phrase

__all__ = ["HandlerBase"]


class HandlerBase(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, answer: Answer, *, close: bool = False) -> None:
        self.send_response(answer.status, reason_phrase(answer.status))
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)

    def _discard_and_send(self, answer: Answer) -> None:
        drained = self._discard_body()
        self._send(answer, close=drained is None)

    def _discard_body(self) -> int | None:
        return discard_body(self.rfile, self.headers)

    def _reset_connection(self) -> None:
        """Close the connection with a TCP RST and no answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket only really closes once the buffered reader's reference is gone.
        self.rfile.close()
        self.connection.close()
