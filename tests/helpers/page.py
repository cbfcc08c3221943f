"""Asking the status page over loopback HTTP, as a browser would (http.client: no proxy in the way)."""

from __future__ import annotations

import base64
import http.client
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def ask(
    port: int,
    target: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    password: str | None = None,
    host: str = "127.0.0.1",
    timeout: float = 20.0,
) -> Answer:
    sent = dict(headers or {})
    if password is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(f"anyone:{password}".encode()).decode()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, target, headers=sent)
        response = connection.getresponse()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def answers(port: int, target: str, **kwargs: object) -> Answer | None:
    """`ask`, or None while nothing answers (the agent not serving yet)."""
    try:
        return ask(port, target, **kwargs)  # type: ignore[arg-type]
    except (OSError, http.client.HTTPException):
        return None
