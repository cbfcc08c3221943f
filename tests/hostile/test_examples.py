"""The examples shipped (README.md's hook scripts, contrib/) are safe beside folders others can write
(issue 21, item 17; THREAT_MODEL rule 1).

A dropper puts a symlink at the name the README's `make-video` hook used to write (`<image>.video.json.tmp`,
beside the image) and points it at a file of root's. The script, as the README prints it, is then run by
the real agent as its `on_upload` hook, with the real curl, against a stand-in for videos/create on
loopback: the file the link points at must be untouched, nothing may be written into the drop folder,
and the hook's own token must reach the API (from a file, not from its command line).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, sidecar_of, wait_for
from tests.helpers.images import png_bytes

pytestmark = pytest.mark.hostile

REPO = Path(__file__).resolve().parents[2]
API = "https://api.useapi.net/v1/minimax"
VIDEO_TOKEN = "user:77-videotoken-of-the-hook"
VIDEO_ID = "video-for-the-test-0001"


def readme_scripts() -> dict[str, str]:
    """README.md's shell scripts (```sh blocks starting with a #! line), by the path their comment names."""
    blocks = re.findall(r"```sh\n(#!.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    found = {}
    for block in blocks:
        named = re.search(r"^# (/\S+)", block, flags=re.M)
        assert named, f"a README script names where it is installed on its second line:\n{block}"
        found[named.group(1)] = block
    return found


def test_the_only_scripts_shipped_are_the_ones_tested_here() -> None:
    """A new example script (README or contrib/) gets its own test in this file."""
    assert set(readme_scripts()) == {"/usr/local/bin/make-video"}
    contrib = [p.name for p in (REPO / "contrib").iterdir() if p.read_bytes().startswith(b"#!")]
    assert contrib == [], f"contrib/ ships scripts: {contrib}"


class VideosApi:
    """A stand-in for videos/create on loopback: answers every POST with a videoId, keeps what it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = json.dumps({"videoId": VIDEO_ID}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/minimax"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> VideosApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def videos_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[VideosApi]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the agent, and so the hook, inherits this
    with VideosApi() as api:
        yield api


def installed(script: str, tmp_path: Path, api: VideosApi) -> Path:
    """The README's script as an operator installs it, its API, token and state folder moved under tmp_path."""
    assert script.count(API) == 1, "the script's API is no longer where this test moves it"
    assert "/etc/minimax-watcher/video-token" in script
    etc, state = tmp_path / "etc", tmp_path / "var-lib"
    etc.mkdir()
    state.mkdir(mode=0o700)
    (etc / "video-token").write_text(VIDEO_TOKEN + "\n")
    moved = script.replace(API, api.url)
    moved = moved.replace("/etc/minimax-watcher/", f"{etc}/").replace("/var/lib/minimax-watcher", str(state))
    program = tmp_path / "make-video"
    program.write_text(moved)
    program.chmod(0o755)
    return program


def holding_the_answer(*folders: Path) -> list[Path]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            try:
                if VIDEO_ID in path.read_text(errors="replace"):
                    found.append(path)
            except OSError:
                pass
    return found


def test_the_make_video_hook_writes_nothing_where_a_dropper_can_plant_a_link(
    start_agent, tmp_path: Path, drop: Path, videos_api: VideosApi
) -> None:
    program = installed(readme_scripts()["/usr/local/bin/make-video"], tmp_path, videos_api)
    precious = tmp_path / "precious"
    precious.write_text("root's own file\n")
    before = (precious.read_bytes(), os.stat(precious).st_mode)
    image = drop / "cat.png"
    planted = drop / "cat.png.video.json.tmp"  # where the README's hook used to write first
    planted.symlink_to(precious)

    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}],
        hooks={"on_upload": [str(program), "a slow pan across the scene"], "timeout_seconds": 60},
    )
    image.write_bytes(png_bytes(4242))
    stored = wait_for(lambda: holding_the_answer(drop, tmp_path / "var-lib"), 60, "the hook's stored answer")

    assert (precious.read_bytes(), os.stat(precious).st_mode) == before, "the hook wrote through the link"
    beside = sorted(p.name for p in drop.iterdir() if p.name.startswith(image.name))
    assert beside == sorted([image.name, sidecar_of(image).name, planted.name]), (
        "the hook wrote beside the image"
    )
    assert [p.parent for p in stored] == [tmp_path / "var-lib/videos"]
    assert stat_mode(tmp_path / "var-lib/videos") == 0o700
    [request] = videos_api.requests
    assert request["path"] == "/v1/minimax/videos/create"
    headers = request["headers"]
    assert isinstance(headers, dict) and headers["Authorization"] == f"Bearer {VIDEO_TOKEN}"
    sent = json.loads(request["body"])  # type: ignore[arg-type]
    fileid = json.loads(sidecar_of(image).read_text())["fileID"]
    assert sent == {"prompt": "a slow pan across the scene", "fileID": fileid, "account": ACCOUNT_A}


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777
