"""The generator end to end against a small loopback API (create, poll, download as SPEC §1 says):
real files, real HTTP, real threads. (The lead switches it to the emulator once it serves videos.)"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from watcher.core.folders import Folder
from watcher.core.generation import Entry
from watcher.core.ports import VideoOffer
from watcher.core.video import VideoSettings, VideoState
from watcher.state.videos import video_journal, video_key
from watcher.video.client import VideoClient
from watcher.video.generator import Generator, entry_id

TOKEN = "user:12345-abcdefghijklmnop"
BOX = struct.Struct(">I4s")
MP4 = BOX.pack(16, b"ftyp") + b"isom\0\0\0\0" + BOX.pack(8, b"moov") + BOX.pack(12, b"mdat") + b"abcd"


class Api:
    """videos/create, GET videos/{id} and downloads; `creates` answers by script (then 200)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []
        self.script: list[Any] = []  # per create: a status, "hang" or a videoId
        self.polls_until_done = 1
        self.polls: dict[str, int] = {}
        self.token_downloads = 0
        self.in_flight: set[str] = set()
        self.peak = 0
        self.release = threading.Event()
        self.hold_ended = threading.Event()  # a held create's handler has let go
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    api.bodies.append(body)
                    n = len(api.bodies)
                    what = api.script.pop(0) if api.script else 200
                if what == "hang":
                    api.release.wait(10)
                    api.hold_ended.set()
                    return
                video_id = what if isinstance(what, str) else f"user:1-minimax:{body['account']}-video:{n}"
                if what != 200 and not isinstance(what, str):
                    return self.answer(what, {"error": "no", "code": what})
                with api.lock:
                    api.in_flight.add(video_id)
                    api.peak = max(api.peak, len(api.in_flight))
                self.answer(200, {"videoId": video_id})

            def do_GET(self) -> None:
                if self.path.startswith("/dl/"):
                    if self.headers.get("Authorization"):
                        with api.lock:
                            api.token_downloads += 1
                        return self.answer(403, {})
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(MP4)))
                    self.end_headers()
                    self.wfile.write(MP4)
                    return
                video_id = self.path.rpartition("/")[2].replace("%3A", ":")
                with api.lock:
                    polls = api.polls[video_id] = api.polls.get(video_id, 0) + 1
                    done = polls > api.polls_until_done
                    if done:
                        api.in_flight.discard(video_id)
                host = self.headers["Host"]
                data = {"videoId": video_id, "status": 2 if done else 1, "statusFinal": done, "percent": 50}
                self.answer(200, data | ({"downloadURL": f"http://{host}/dl/{polls}.mp4"} if done else {}))

            def answer(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/minimax"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Events:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.submitted: list[str] = []
        self.final: list[tuple[str, str, dict[str, Any], str | None]] = []
        self.said: list[str] = []

    def video_submitted(self, folder: Folder, image: str, video_id: str) -> None:
        with self.lock:
            self.submitted.append(video_id)

    def video_final(
        self,
        folder: Folder,
        image: str,
        record: dict[str, Any],
        result: str,
        video_path: str | None,
        seconds: float | None,
    ) -> None:
        with self.lock:
            self.final.append((image, result, record, video_path))

    def attention(self, account: str, message: str) -> None:
        with self.lock:
            self.said.append(message)


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    server.close()


class Setup:
    def __init__(self, tmp_path: Path, api: Api) -> None:
        self.api, self.state = api, tmp_path / "state"
        self.root = tmp_path / "drop"
        self.root.mkdir()
        self.folder = self.make_folder()
        self.events = Events()
        self.running: list[Generator] = []

    def make_folder(self, **settings: Any) -> Folder:
        gen = VideoSettings(
            "I2V", str(self.root / "videos"), prompt="slow dolly in", poll_seconds=0.2, **settings
        )
        return Folder(str(self.root), "111", recursive=True, polling=False, generate=gen)

    def start(self, read_timeout: float = 5.0) -> Generator:
        client = VideoClient(self.api.url, TOKEN, connect_timeout=2.0, read_timeout=read_timeout)
        g = Generator(
            state_dir=self.state, client=client, events=self.events, folders=[self.folder], settle_seconds=0
        )
        g.start()
        self.running.append(g)
        return g

    def stop(self, g: Generator) -> None:
        g.stop()
        self.running.remove(g)

    def stop_within(self, g: Generator, timeout: float) -> None:
        g.stop(timeout)
        self.running.remove(g)

    def image(self, name: str, data: bytes = b"png") -> VideoOffer:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return VideoOffer(
            self.folder, str(path), "user:1-minimax:111-file:9", "111", hashlib.sha256(data).hexdigest()
        )

    def results(self) -> list[str]:
        with self.events.lock:
            return [result for _, result, _, _ in self.events.final]


@pytest.fixture
def setup(tmp_path: Path, api: Api) -> Iterator[Setup]:
    s = Setup(tmp_path, api)
    yield s
    for g in list(s.running):
        g.stop()


def test_an_offered_image_becomes_an_mp4_and_a_record(setup: Setup) -> None:
    g = setup.start()
    offer = setup.image("sub/cat.png")
    (setup.root / "sub/cat.txt").write_text("a cat yawns")
    g.offer(offer)
    wait_for(lambda: setup.results(), 10, "the video's end")
    assert setup.results() == ["completed"]
    [(image, _, record, video_path)] = setup.events.final
    assert record["status"] == "done"
    assert video_path == str(setup.root / "videos/sub/cat.mp4")
    assert Path(video_path).read_bytes() == MP4
    assert setup.api.bodies == [
        {"account": "111", "fileID": "user:1-minimax:111-file:9", "model": "I2V", "prompt": "a cat yawns"}
    ]
    assert setup.api.token_downloads == 0  # the token never went to the download
    on_disk = json.loads(Path(image + ".video.json").read_text())
    assert on_disk["status"] == "done" and on_disk["video"] == "videos/sub/cat.mp4"
    assert setup.events.submitted == ["user:1-minimax:111-video:1"]
    wait_for(g.idle, 5, "the generator to be idle")
    assert g.snapshot().folders[str(setup.root)].done == 1


def test_one_create_per_intent_across_offers_and_a_restart(setup: Setup) -> None:
    g = setup.start()
    offer = setup.image("a.png")
    g.offer(offer)
    g.offer(offer)
    wait_for(lambda: setup.results(), 10, "the video's end")
    setup.stop(g)
    g = setup.start()
    g.offer(offer)  # a rescan or a reload offering it again
    # Idle once the offer is taken: had it been queued or sent again, it would not be idle yet.
    wait_for(g.idle, 5, "the generator to be idle")
    assert len(setup.api.bodies) == 1


def test_a_lost_answer_is_unknown_reported_and_never_sent_again(setup: Setup) -> None:
    setup.api.script = ["hang"]
    g = setup.start(read_timeout=0.5)
    offer = setup.image("a.png")
    g.offer(offer)
    wait_for(lambda: setup.results(), 10, "the create's end")
    assert setup.results() == ["unknown"]
    assert len(setup.events.said) == 1 and "may have spent credits" in setup.events.said[0]
    record = json.loads(Path(offer.image + ".video.json").read_text())
    assert record["status"] == "unknown"
    setup.stop(g)
    g = setup.start()
    g.offer(offer)
    wait_for(g.idle, 5, "the generator to be idle")
    assert len(setup.api.bodies) == 1 and len(setup.events.said) == 1
    # The operator's retry sends it again, once.
    assert g.retry([offer.image], failed=False, folder=None) == [
        f"{offer.image}: its unknown video is asked for again"
    ]
    wait_for(lambda: setup.results().count("completed") == 1, 10, "the retried video")
    assert len(setup.api.bodies) == 2


def test_a_create_in_flight_at_a_kill_is_unknown_at_start_reported_once(setup: Setup) -> None:
    offer = setup.image("a.png")
    journal = video_journal(setup.state)
    g = setup.start()
    setup.api.script = ["hang"]
    g.offer(offer)
    wait_for(lambda: setup.api.bodies, 5, "the create to be sent")
    key = video_key(entry_id(str(setup.root), offer.image, offer.sha256))
    kept = journal.read()[key]
    assert kept.state is VideoState.SUBMITTING  # type: ignore[union-attr]  # journalled before it was sent
    # What kill -9 leaves: the journal as it is now; a new agent on it.
    copy = setup.state.parent / "killed"
    copy.mkdir()
    (copy / "videos.journal").write_bytes((setup.state / "videos.journal").read_bytes())
    setup.api.release.set()
    setup.stop(g)
    setup.state = copy
    setup.events = Events()
    g = setup.start()
    wait_for(lambda: setup.results(), 5, "the lost create to be reported")
    assert setup.results() == ["unknown"] and len(setup.events.said) == 1
    setup.stop(g)
    g = setup.start()
    wait_for(g.idle, 5, "the generator to be idle")
    assert len(setup.events.said) == 1 and len(setup.api.bodies) == 1


def test_no_credits_pauses_the_account_and_says_so_once(setup: Setup) -> None:
    setup.api.script = [412]
    setup.folder = setup.make_folder(max_jobs=1)  # one create at a time: the 412 comes before another is sent
    g = setup.start()
    for n in range(3):
        g.offer(setup.image(f"{n}.png"))
    wait_for(lambda: setup.events.said, 5, "the pause to be said")
    assert "top it up at useapi.net" in setup.events.said[0] and "paused until" in setup.events.said[0]
    view = wait_for(lambda: g.snapshot().accounts.get("111"), 5, "the account's view")
    assert view.paused_until is not None and view.today == 0  # the refused create is not counted
    # A probe offered now is taken after a turn of the loop that saw the pause: all 4 wait, none is sent.
    g.offer(setup.image("probe.png", b"probe"))
    wait_for(lambda: queued_and_none_in_flight(g, setup, 4), 5, "the probe to be taken in")
    assert len(setup.api.bodies) == 1 and len(setup.events.said) == 1
    setup.stop(g)
    g = setup.start()  # the pause is journalled
    g.offer(setup.image("probe-2.png", b"probe-2"))  # taken in after a turn that saw the journal
    wait_for(lambda: queued_and_none_in_flight(g, setup, 5), 5, "the second probe to be taken in")
    assert len(setup.api.bodies) == 1
    assert g.snapshot().accounts["111"].paused_until is not None


def queued_and_none_in_flight(g: Generator, setup: Setup, queued: int) -> bool:
    """`queued` videos waiting, none sent and unanswered: what the generator decided is on view. An
    offer made after a decision is taken in only after a turn of the loop that acted on it (the loop
    takes offers and then dispatches under one lock, or dispatches before it waits for an offer)."""
    summary = g.snapshot()
    account = summary.accounts.get("111")
    folder = summary.folders.get(str(setup.root))
    return folder is not None and folder.queued == queued and account is not None and account.in_flight == 0


def test_slots_bound_videos_in_flight(setup: Setup) -> None:
    setup.folder = setup.make_folder(max_jobs=2)
    setup.api.polls_until_done = 2
    g = setup.start()
    for n in range(6):
        g.offer(setup.image(f"{n}.png", bytes([n])))
    wait_for(lambda: len(setup.results()) == 6, 30, "six videos")
    assert setup.results() == ["completed"] * 6
    assert setup.api.peak == 2


def test_an_odd_video_id_is_unknown_and_a_refusal_fails_then_retry(setup: Setup) -> None:
    setup.api.script = ["user:1-minimax:111-video:../../etc", 422]
    g = setup.start()
    a, b = setup.image("a.png", b"a"), setup.image("b.png", b"b")
    g.offer(a)
    wait_for(lambda: setup.results(), 5, "the first create's end")
    g.offer(b)
    wait_for(lambda: len(setup.results()) == 2, 5, "the second create's end")
    assert setup.results() == ["unknown", "failed"]
    assert "moderation" in json.loads(Path(b.image + ".video.json").read_text())["error"]
    said = g.retry([], failed=True, folder=str(setup.root))
    assert len(said) == 2
    wait_for(lambda: setup.results().count("completed") == 2, 10, "both retried")
    assert len(setup.api.bodies) == 4


def test_a_bad_prompt_file_fails_that_video_only(setup: Setup) -> None:
    g = setup.start()
    bad = setup.image("bad.png", b"1")
    (setup.root / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    g.offer(bad)
    g.offer(setup.image("good.png", b"2"))
    wait_for(lambda: len(setup.results()) == 2, 10, "both ends")
    assert sorted(setup.results()) == ["completed", "failed"]
    assert len(setup.api.bodies) == 1


def test_retry_offers_a_done_image_from_its_sidecar(setup: Setup) -> None:
    g = setup.start()
    path = setup.root / "old.png"
    path.write_bytes(b"old")
    st = path.stat()
    sidecar = {
        "fileID": "user:1-minimax:111-file:5",
        "sha256": "ab" * 32,
        "account": "111",
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ino": st.st_ino,
    }
    (setup.root / "old.png.json").write_text(json.dumps(sidecar))
    assert g.retry([str(path)], failed=False, folder=None) == [f"{path}: a video is asked for"]
    wait_for(lambda: setup.results() == ["completed"], 10, "its video")
    assert setup.api.bodies[0]["fileID"] == "user:1-minimax:111-file:5"
    path.write_bytes(b"new bytes")  # a sidecar that no longer matches is not taken
    other = setup.root / "other.png"
    other.write_bytes(b"x")
    assert "no valid sidecar" in g.retry([str(other)], failed=False, folder=None)[0]


def sidecar_of(path: Path, file_id: str) -> None:
    st = path.stat()
    record = {
        "fileID": file_id,
        "sha256": "cd" * 32,
        "account": "111",
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ino": st.st_ino,
    }
    path.with_name(path.name + ".json").write_text(json.dumps(record))


def test_an_end_frame_waits_for_its_sidecar_and_is_sent(setup: Setup) -> None:
    g = setup.start()
    offer = setup.image("x.png")
    end = setup.root / "x.end.png"
    end.write_bytes(b"end")
    g.offer(offer)
    # Offered after it, in the same lane: its video is sent only once x.png was looked at (and waits).
    g.offer(dataclasses.replace(setup.image("other.png", b"other"), file_id="user:1-minimax:111-file:10"))
    wait_for(lambda: setup.results() == ["completed"], 10, "the other image's video")
    assert [body["fileID"] for body in setup.api.bodies] == ["user:1-minimax:111-file:10"]
    sidecar_of(end, "user:1-minimax:111-file:77")
    wait_for(lambda: setup.results() == ["completed"] * 2, 10, "the video")
    assert setup.api.bodies[1]["end_frame_fileID"] == "user:1-minimax:111-file:77"


def test_an_end_frame_that_failed_its_upload_fails_the_video(setup: Setup) -> None:
    g = setup.start()
    offer = setup.image("y.png")
    (setup.root / "y.end.png").write_bytes(b"end")
    (setup.root / "y.end.png.error.json").write_text(json.dumps({"error": "too big\x1b[2J"}))
    g.offer(offer)
    wait_for(lambda: setup.results() == ["failed"], 10, "the video's end")
    error = setup.events.final[0][2]["error"]
    assert "end frame" in error and "\x1b" not in error
    assert setup.api.bodies == []


def test_a_deleted_video_record_never_causes_a_new_create(setup: Setup) -> None:
    g = setup.start()
    offer = setup.image("z.png")
    g.offer(offer)
    wait_for(lambda: setup.results() == ["completed"], 10, "the video")
    Path(offer.image + ".video.json").unlink()  # a dropper can
    setup.stop(g)
    g = setup.start()
    g.offer(offer)
    wait_for(g.idle, 5, "the generator to be idle")
    assert len(setup.api.bodies) == 1


def test_a_stop_while_a_create_is_answered_journals_its_answer(setup: Setup) -> None:
    setup.api.script = ["hang"]
    g = setup.start()
    offer = setup.image("w.png")
    g.offer(offer)
    wait_for(lambda: setup.api.bodies, 5, "the create to be sent")
    threading.Timer(0.3, setup.api.release.set).start()  # answered (empty) while the stop waits for it
    setup.stop(g)
    [entry] = [kept for kept in video_journal(setup.state).read().values() if isinstance(kept, Entry)]
    assert entry.state is VideoState.UNKNOWN  # its (lost) answer came during the stop: not left SUBMITTING


def test_retry_of_a_video_that_is_done_does_nothing_and_says_so(setup: Setup) -> None:
    g = setup.start()
    offer = setup.image("d.png")
    g.offer(offer)
    wait_for(lambda: setup.results() == ["completed"], 10, "the video")
    assert g.retry([offer.image], failed=False, folder=None) == [
        f"{offer.image}: its video is done; nothing to do"
    ]
    assert g.retry([], failed=True, folder=None) == []
    wait_for(g.idle, 5, "the generator to be idle")
    assert len(setup.api.bodies) == 1


def test_retry_refuses_a_sidecar_naming_another_account(setup: Setup) -> None:
    g = setup.start()
    path = setup.root / "forged.png"
    path.write_bytes(b"x")
    st = path.stat()
    forged = {
        "fileID": "user:1-minimax:999-file:5",
        "sha256": "ab" * 32,
        "account": "999",
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ino": st.st_ino,
    }
    (setup.root / "forged.png.json").write_text(json.dumps(forged))
    assert "another account" in g.retry([str(path)], failed=False, folder=None)[0]
    wait_for(g.idle, 5, "the generator to be idle")
    assert setup.api.bodies == []


def test_the_days_cap_holds_across_a_restart(setup: Setup) -> None:
    setup.folder = setup.make_folder(max_per_day=1)
    g = setup.start()
    for n in range(3):
        g.offer(setup.image(f"{n}.png", bytes([n])))
    wait_for(lambda: setup.results() == ["completed"], 10, "the day's one video")
    setup.stop(g)
    g = setup.start()
    g.offer(setup.image("probe.png", b"probe"))  # taken in after a turn of the loop on the journal
    wait_for(lambda: queued_and_none_in_flight(g, setup, 3), 5, "the probe to be taken in")
    assert len(setup.api.bodies) == 1
    view = g.snapshot().accounts["111"]
    assert (view.today, view.cap) == (1, 1)


def test_no_create_is_sent_when_its_intent_cannot_be_journalled(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """THREAT_MODEL rule 5: journalled before the request. A state folder that refuses the journal (here
    its file is a folder) must hold the create back, not send it unrecorded."""
    g = setup.start()
    journal = setup.state / "videos.journal"
    journal.unlink(missing_ok=True)
    journal.mkdir(parents=True)
    g.offer(setup.image("a.png"))
    wait_for(lambda: "cannot journal it" in caplog.text, 10, "the generator to say it cannot journal")
    assert setup.api.bodies == []
    journal.rmdir()
    wait_for(lambda: setup.results() == ["completed"], 30, "the video once the journal can be written")
    assert len(setup.api.bodies) == 1


def test_a_second_process_on_the_state_folder_stands_aside_and_hands_its_images_over(
    setup: Setup,
) -> None:
    """A `scan` beside the running agent (one state folder): only one works the journal (else the
    second would take the first's create in flight for a lost one). The second hands its images over
    as retry requests; the first makes their videos, once each."""
    first = setup.start()
    second = setup.start()
    assert second.settled() and not second.awaits_video("anything")
    offer = setup.image("from-scan.png")
    sidecar_of(Path(offer.image), offer.file_id)  # as the scan's upload wrote it
    second.offer(offer)
    wait_for(lambda: setup.results() == ["completed"], 30, "the first agent to make the video")
    assert len(setup.api.bodies) == 1
    setup.stop(second)
    wait_for(first.idle, 10, "the first agent to be idle")


def test_a_stop_does_not_wait_out_a_slow_create_it_cuts_it_and_says_unknown(setup: Setup) -> None:
    """The API holds the create's answer (its read timeout is 60 s): a stop gives it what is left of its
    own timeout, then cuts it. The answer is lost, so the video is unknown, reported, never resent."""
    setup.api.script = ["hang"]
    g = setup.start(read_timeout=60.0)
    offer = setup.image("a.png")
    g.offer(offer)
    wait_for(lambda: setup.api.bodies, 10, "the create to reach the API")
    setup.stop_within(g, 0.5)
    assert not setup.api.hold_ended.is_set()  # the stop did not wait for the API to let go
    assert setup.results() == ["unknown"] and "may have spent credits" in setup.events.said[0]
    g = setup.start()
    wait_for(g.idle, 5, "the generator to be idle")
    assert len(setup.api.bodies) == 1
