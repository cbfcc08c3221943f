"""The status page against whoever can drop files or open connections (SPEC §9, THREAT_MODEL.md): it
serves only files with this agent's done sidecar inside a watched folder, never through a symlink, never
a decompression bomb, never the token; beyond loopback only with the password; names stay data."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers import ACCOUNT_A, TOKEN, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, png_chunk
from tests.helpers.page import Answer, answers, ask
from tests.helpers.videos import free_port, generate, wait_video
from watcher.core.api_owner import normalized_base_url
from watcher.core.signature import signature_of
from watcher.disk.records import build_sidecar
from watcher.emulator import Emulator
from watcher.page.thumbnails import cache_key

pytestmark = pytest.mark.hostile

PASSWORD = "page-password-DONOTLEAK"
SECRET = b"\xff\xd8\xff\xe0 SECRET BYTES OUTSIDE THE FOLDER"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A], generation_seconds=1) as emu:
        yield emu


def thumbnail_of(rel: str, folder: int = 0) -> str:
    return f"/thumbnail?folder={folder}&file={quote(os.fsencode(rel), safe='')}"


def planted_sidecar(image: Path, base_url: str, user: str = "4242") -> None:
    """A sidecar for `image`'s very bytes, as the agent would write it for `user` at `base_url`."""
    st = os.stat(image)  # follows a symlink: the sidecar matches what the link points at
    sidecar = build_sidecar(
        image_path=str(image),
        account=ACCOUNT_A,
        file_id=f"user:{user}-minimax:{ACCOUNT_A}-file:390000000000001",
        oss_path="https://cdn.example/x.png",
        signature=signature_of(st),
        sha256="0" * 64,
        content_type="image/png",
        base_url=normalized_base_url(base_url),
    )
    image.with_name(image.name + ".json").write_text(json.dumps(sidecar))


def served(port: int, target: str, **kwargs: object) -> Answer:
    answer = ask(port, target, **kwargs)  # type: ignore[arg-type]
    assert TOKEN.encode() not in answer.body and PASSWORD.encode() not in answer.body
    assert TOKEN not in str(answer.headers) and PASSWORD not in str(answer.headers)
    return answer


@pytest.mark.timeout(120)
def test_only_done_files_inside_the_folder_and_never_through_a_symlink(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    port = free_port()
    outside = tmp_path / "outside"
    outside.mkdir()
    # Files the agent leaves alone (excluded), each with a sidecar planted by a local user.
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "exclude": ["planted/**"]}],
        status_page={"listen": f"127.0.0.1:{port}"},
    )
    image = drop / "real.png"
    image.write_bytes(png_bytes(25001, size=400))
    wait_sidecar(image)
    assert served(port, thumbnail_of("real.png")).status == 200

    planted = drop / "planted"
    planted.mkdir()
    (planted / "owned.png").write_bytes(png_bytes(25002))
    planted_sidecar(planted / "owned.png", emulator.base_url)
    assert served(port, thumbnail_of("planted/owned.png")).status == 200  # the control: a done file
    # Another API user's fileID: not this agent's upload, not shown.
    (planted / "other.png").write_bytes(png_bytes(25003))
    planted_sidecar(planted / "other.png", emulator.base_url, user="1")
    # No sidecar at all.
    (planted / "bare.png").write_bytes(png_bytes(25004))
    # A symlink to an image outside, with a sidecar matching the image it points at.
    (outside / "secret.png").write_bytes(png_bytes(25005))
    (planted / "link.png").symlink_to(outside / "secret.png")
    planted_sidecar(planted / "link.png", emulator.base_url)
    # A folder on the way that is a symlink to one outside, holding a done-looking image.
    (outside / "inner.png").write_bytes(png_bytes(25006))
    planted_sidecar(outside / "inner.png", emulator.base_url)
    (planted / "away").symlink_to(outside)
    # Climbing out, absolute paths, another folder's number.
    planted_sidecar(outside / "secret.png", emulator.base_url)
    refused = [
        thumbnail_of("planted/other.png"),
        thumbnail_of("planted/bare.png"),
        thumbnail_of("planted/link.png"),
        thumbnail_of("planted/away/inner.png"),
        thumbnail_of("../outside/secret.png"),
        thumbnail_of("planted/../../outside/secret.png"),
        thumbnail_of(str(outside / "secret.png")),
        thumbnail_of("real.png", folder=1),
        "/thumbnail?folder=0&file=" + quote(str(outside / "secret.png")),
        "/video?folder=0&file=..%2Foutside%2Fsecret.png",
        "/video?folder=0&file=real.png",
        "/static/../config.yaml",
        "/static/index.html/../../../../etc/passwd",
    ]
    for target in refused:
        answer = served(port, target)
        assert answer.status == 404, (target, answer)
        assert answer.body == b"not found\n"

    # A symlink planted where a cached thumbnail is read: made anew, never the link's target.
    secret = outside / "secret.jpg"
    secret.write_bytes(SECRET)
    key = cache_key(str(drop), "planted/owned.png", os.stat(planted / "owned.png"))
    cache = agent.workdir / "state" / "minimax-watcher" / "thumbnails" / f"{key}.jpg"
    cache.unlink()
    cache.symlink_to(secret)
    answer = served(port, thumbnail_of("planted/owned.png"))
    assert answer.status == 200 and SECRET not in answer.body and answer.body.startswith(b"\xff\xd8")
    assert not cache.is_symlink() and secret.read_bytes() == SECRET  # replaced, not written through
    assert "Traceback" not in agent.log()


def bomb_png(side: int) -> bytes:
    """A 1-bit PNG of `side` x `side` pixels: about 100 KB on disk, a thousand million pixels decoded."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


@pytest.mark.timeout(120)
def test_a_decompression_bomb_is_refused_with_a_log_line(start_agent, drop: Path, emulator: Emulator) -> None:
    port = free_port()
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}], status_page={"listen": f"127.0.0.1:{port}"}
    )
    image = drop / "bomb.png"
    image.write_bytes(bomb_png(30000))
    wait_sidecar(image, timeout=30)
    started = time.monotonic()
    answer = served(port, thumbnail_of("bomb.png"))
    assert answer.status == 404 and time.monotonic() - started < 5
    wait_for(lambda: "30000 x 30000 pixels" in agent.log(), 10, "the log line saying why")
    assert served(port, "/api/status").status == 200  # and the page goes on


def test_beyond_loopback_only_with_the_password(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    port = free_port()
    refused = AgentProcess(
        tmp_path,
        emulator.base_url,
        [{"path": str(drop), "account": ACCOUNT_A}],
        status_page={"listen": f"0.0.0.0:{port}"},
    )
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), USEAPI_TOKEN=TOKEN)
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(refused.config_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78, result.stderr
    assert "status_page" in result.stderr and "add password_file" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    password_file = tmp_path / "page-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}],
        status_page={"listen": f"0.0.0.0:{port}", "password_file": "page-password"},
    )
    for target in ("/", "/api/status", "/thumbnail?folder=0&file=x.png", "/nothing"):
        for password in (None, "wrong-password"):
            answer = served(port, target, password=password)
            assert answer.status == 401, (target, answer)
            assert answer.headers["www-authenticate"] == 'Basic realm="minimax-watcher"'
            assert answer.headers["x-content-type-options"] == "nosniff"
    assert served(port, "/api/status", password=PASSWORD).status == 200
    assert served(port, "/api/status", headers={"Authorization": "Bearer " + PASSWORD}).status == 401
    assert PASSWORD not in agent.log()


@pytest.mark.timeout(180)
def test_names_stay_data_the_token_stays_out_and_connections_cannot_stop_it(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    port = free_port()
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}],
        status_page={"listen": f"127.0.0.1:{port}"},
    )
    hostile = drop / "<script>alert(1)<b>&.png"
    hostile.write_bytes(png_bytes(26001))
    other = drop / "plain.png"
    other.write_bytes(png_bytes(26002))
    wait_sidecar(hostile)
    wait_sidecar(other)
    wait_video(hostile)

    def listed() -> Answer | None:
        answer = answers(port, "/api/status")
        return answer if answer is not None and len(json.loads(answer.body)["recent"]) == 2 else None

    answer = wait_for(listed, 20, "both uploads on /api/status", interval=0.2)
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert b"<" not in answer.body and b">" not in answer.body and b"&" not in answer.body
    assert b"\\u003cscript\\u003ealert(1)\\u003cb\\u003e\\u0026.png" in answer.body
    assert hostile.name in {r["file"] for r in json.loads(answer.body)["recent"]}
    assert TOKEN.encode() not in answer.body
    report = json.loads(answer.body)
    for target in [r["thumbnail"] for r in report["recent"]] + ["/", "/static/page.js", "/static/page.css"]:
        served(port, target)
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        refused = served(port, "/api/status", method=method)
        assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD"

    # A slowloris, 200 idle connections and a client that never reads its video: the page still
    # answers a well-behaved client while the attacker holds them all.
    [video] = [v for v in report["folders"][0]["videos"]["recent"] if v["file"] == hostile.name]
    attack: list[socket.socket] = []
    try:
        reader = socket.create_connection(("127.0.0.1", port))
        attack.append(reader)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        reader.sendall(f"GET {video['video']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        slow = socket.create_connection(("127.0.0.1", port))
        attack.append(slow)
        slow.sendall(b"GET /api/status HTTP/1.1\r\n")
        for _ in range(200):
            s = socket.socket()
            attack.append(s)
            s.settimeout(1)
            with contextlib.suppress(OSError):
                s.connect(("127.0.0.1", port))
                s.sendall(b"G")

        def answered() -> Answer | None:
            with contextlib.suppress(OSError):
                slow.send(b"X")
            found = answers(port, "/api/status", timeout=3)
            return found if found is not None and found.status == 200 else None

        wait_for(answered, 30, "/api/status answered during the attack", interval=0.2)
    finally:
        for s in attack:
            s.close()
    assert "Traceback" not in agent.log()
