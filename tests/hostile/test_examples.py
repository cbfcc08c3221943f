"""The examples shipped (the docs' hook scripts, contrib/) are safe beside folders others can write
(issue 21, item 17; THREAT_MODEL rules 1 and 2).

docs/hooks.md's `tell-the-team` hook is run by the real agent as its `on_video` hook, with the real curl and
jq, after a real video of the emulator: a dropper names the image with shell and JSON metacharacters. The
name must reach the chat as text (never run, never break the JSON), nothing may be written into the drop
folder, and the webhook's address must come from the hook's own file.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, sidecar_of, wait_for
from tests.helpers.images import png_bytes

pytestmark = pytest.mark.hostile

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_FILE = "/etc/minimax-watcher/chat-webhook"
NAME = "x$(touch PWNED)'\"}`id`"  # an image stem a dropper chooses


def readme_scripts() -> dict[str, str]:
    """The docs' shell scripts (```sh blocks starting with a #! line in README.md and docs/*.md), by the path
    their comment names."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    blocks = [b for page in pages for b in re.findall(r"```sh\n(#!.*?)```", page.read_text(), flags=re.S)]
    found = {}
    for block in blocks:
        named = re.search(r"^# (/\S+)", block, flags=re.M)
        assert named, f"a docs script names where it is installed on its second line:\n{block}"
        found[named.group(1)] = block
    return found


def test_the_only_scripts_shipped_are_the_ones_tested_here() -> None:
    """A new example script (docs or contrib/) gets its own test in this file."""
    assert set(readme_scripts()) == {"/usr/local/bin/tell-the-team"}
    contrib = [p.name for p in (REPO / "contrib").iterdir() if p.read_bytes().startswith(b"#!")]
    assert contrib == [], f"contrib/ ships scripts: {contrib}"


class Chat:
    """A stand-in for a chat webhook on loopback: keeps every POST."""

    def __init__(self) -> None:
        self.posts: list[dict[str, object]] = []
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                chat.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/team"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Chat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> Iterator[Chat]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the agent, and so the hook, inherits this
    with Chat() as server:
        yield server


def installed(script: str, tmp_path: Path, chat: Chat) -> Path:
    """The README's script as an operator installs it, its webhook file moved under tmp_path."""
    assert script.count(WEBHOOK_FILE) == 1, "the script's webhook file is no longer where this test moves it"
    secret = tmp_path / "etc" / "chat-webhook"
    secret.parent.mkdir()
    secret.write_text(chat.url + "\n")
    program = tmp_path / "tell-the-team"
    program.write_text(script.replace(WEBHOOK_FILE, str(secret)))
    program.chmod(0o755)
    return program


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None, reason="needs curl and jq")
def test_the_tell_the_team_hook_sends_a_droppers_name_as_text_and_writes_nothing_beside_it(
    start_agent, tmp_path: Path, drop: Path, chat: Chat
) -> None:
    program = installed(readme_scripts()["/usr/local/bin/tell-the-team"], tmp_path, chat)
    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "generate": {"model": "I2V-2.3", "poll_seconds": 1}}],
        hooks={"on_video": [str(program)], "timeout_seconds": 60},
    )
    image = drop / f"{NAME}.png"
    image.write_bytes(png_bytes(4243))

    wait_for(lambda: chat.posts, 60, "the hook's post")

    [post] = chat.posts
    assert post["path"] == "/hooks/team"
    assert json.loads(post["body"]) == {"text": f"New video {NAME}.mp4 from {NAME}.png"}  # type: ignore[arg-type]
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists(), "the name was run as a command"
    assert sorted(p.name for p in drop.iterdir() if not p.name.startswith(".")) == sorted(
        [image.name, sidecar_of(image).name, f"{image.name}.video.json", "videos"]
    ), "something was written beside the image"
    assert [p.name for p in (drop / "videos").iterdir()] == [f"{NAME}.mp4"]
