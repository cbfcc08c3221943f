"""Asking the status page over loopback HTTP, as a browser would (http.client: no proxy in the way); and
`site`, a watched folder with a done image and a done video, for the page's unit tests."""

from __future__ import annotations

import base64
import http.client
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ACCOUNT_A, TOKEN
from tests.helpers.images import png_bytes
from watcher.config.load import Config, load_config
from watcher.core.api_owner import ApiOwner, normalized_base_url
from watcher.core.generation import Entry
from watcher.core.signature import signature_of
from watcher.core.video import VideoState
from watcher.disk.records import build_sidecar
from watcher.state.videos import video_journal


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


BASE_URL = "http://127.0.0.1:9"


@dataclass
class Site:
    config: Config
    owner: ApiOwner
    drop: Path
    state: Path
    static: Path


def done_sidecar(image: Path, user: str = "4242", base_url: str = BASE_URL) -> dict[str, Any]:
    sidecar = build_sidecar(
        image_path=str(image),
        account=ACCOUNT_A,
        file_id=f"user:{user}-minimax:{ACCOUNT_A}-file:380000000000001",
        oss_path="https://cdn.example/x.png",
        signature=signature_of(os.stat(image)),
        sha256="0" * 64,
        content_type="image/png",
        base_url=normalized_base_url(base_url),
    )
    image.with_name(image.name + ".json").write_text(json.dumps(sidecar))
    return sidecar


def done_video(state: Path, drop: Path, image: str, video: str, finished: float = 1.0) -> None:
    entry = Entry(
        f"v:{image}", folder=str(drop), image=str(drop / image), file_id="f", account=ACCOUNT_A, sha256="s"
    )
    entry.state, entry.video, entry.video_id, entry.finished_at = (
        VideoState.DONE,
        video,
        f"id-{image}",
        finished,
    )
    journal = video_journal(state)
    journal.add(entry.id, entry, sync=True)
    journal.close()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def make_site(tmp_path: Path) -> Site:
    drop, state, static = tmp_path / "drop", tmp_path / "state", tmp_path / "static"
    for folder in (drop, state, static, drop / "videos"):
        folder.mkdir()
    (static / "index.html").write_text("<!doctype html><title>page</title>")
    (static / "page.js").write_text("'use strict';")
    (static / "page.css").write_text("body {}")
    (tmp_path / "secret.txt").write_text("not served")
    config_file = tmp_path / "config.yaml"
    settings = {
        "api": {"base_url": BASE_URL},
        "folders": [
            {"path": str(drop), "account": ACCOUNT_A, "generate": {"model": "m", "output_dir": "videos"}}
        ],
    }
    config_file.write_text(yaml.safe_dump(settings))
    image = drop / "cat.png"
    image.write_bytes(png_bytes(1, size=500))
    done_sidecar(image)
    (drop / "videos" / "cat.mp4").write_bytes(bytes(range(256)) * 4)
    done_video(state, drop, "cat.png", "videos/cat.mp4")
    return Site(load_config(config_file), ApiOwner.of(BASE_URL, TOKEN), drop, state, static)
