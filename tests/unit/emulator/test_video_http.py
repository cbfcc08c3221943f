"""The emulator's video endpoints over real loopback HTTP, with `requests` as the client: the round
trip from upload to MP4, the token-refusing download path, max_jobs, every video fault, the records
and the control endpoints."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.unit.emulator.test_mp4 import boxes
from watcher.emulator import Emulator, Fault
from watcher.emulator.mp4 import make_mp4

TOKEN = "user:12345-abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
A, B = "111", "222"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(clock: Clock) -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=(A, B), generation_seconds=10, max_jobs=2, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def upload(session: requests.Session, emu: Emulator, account: str = A) -> str:
    resp = session.post(
        f"{emu.base_url}/files/",
        params={"account": account},
        data=b"\x89PNG\r\n\x1a\n" + b"x" * 100,
        headers={**AUTH, "Content-Type": "image/png"},
        timeout=10,
    )
    assert resp.status_code == 200
    return str(resp.json()["fileID"])


def create(
    session: requests.Session, emu: Emulator, account: str = A, *, timeout: float = 10, **extra: Any
) -> requests.Response:
    body = {"account": account, "fileID": emu.issue_file(account), "model": "I2V-2.3", **extra}
    return session.post(f"{emu.base_url}/videos/create", json=body, headers=AUTH, timeout=timeout)


def made(session: requests.Session, emu: Emulator, account: str = A) -> str:
    resp = create(session, emu, account)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["videoId"])


def poll(session: requests.Session, emu: Emulator, video_id: str) -> requests.Response:
    return session.get(f"{emu.base_url}/videos/{video_id}", headers=AUTH, timeout=10)


def completed(session: requests.Session, emu: Emulator, clock: Clock) -> dict[str, Any]:
    video_id = made(session, emu)
    clock.now += 10
    data = poll(session, emu, video_id).json()
    assert data["status"] == 2
    return dict(data)


def test_upload_create_poll_until_final_then_download_a_valid_mp4(
    emu: Emulator, session: requests.Session, clock: Clock
) -> None:
    file_id = upload(session, emu)
    resp = session.post(
        f"{emu.base_url}/videos/create",
        json={"account": A, "fileID": file_id, "model": "I2V-2.3", "prompt": "slow dolly in"},
        headers=AUTH,
        timeout=10,
    )
    assert resp.status_code == 200
    video_id = resp.json()["videoId"]
    assert video_id.startswith(f"user:12345-minimax:{A}-video:")
    statuses = []
    while True:
        data = poll(session, emu, video_id).json()
        statuses.append(data["status"])
        if data["statusFinal"]:
            break
        clock.now += 2.5
    assert statuses[0] == 11 and 12 in statuses and statuses[-1] == 2
    assert data["downloadURL"].startswith(emu.origin + "/_emulator/downloads/")
    mp4 = requests.get(data["downloadURL"], timeout=10)  # a fresh session: no credentials
    assert mp4.status_code == 200 and mp4.headers["Content-Type"] == "video/mp4"
    assert mp4.content == make_mp4()
    assert [kind for kind, _, _ in boxes(mp4.content)] == [b"ftyp", b"moov", b"mdat"]
    watermarked = requests.get(data["videoURL"], timeout=10)
    assert watermarked.status_code == 200 and watermarked.content == mp4.content

    assert [r.kind for r in emu.all_requests][:2] == ["upload", "create"]
    (created,) = emu.creates
    assert (created.account, created.status, created.video_id, created.cut) == (A, 200, video_id, False)
    assert created.body["prompt"] == "slow dolly in" and created.answer["videoId"] == video_id
    assert [p.video_status for p in emu.polls] == statuses
    assert [d.status for d in emu.downloads] == [200, 200] and emu.token_leaks == []
    assert len(emu.requests) == 1 and len(emu.uploads) == 1  # the upload records are as they were


def test_the_download_path_refuses_the_token_in_any_form_and_records_each_as_a_leak(
    emu: Emulator, session: requests.Session, clock: Clock
) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    tries = [
        requests.get(url, headers=AUTH, timeout=10),
        requests.get(url, headers={"Authorization": "Basic eDp5"}, timeout=10),  # any Authorization
        requests.get(url, params={"token": TOKEN}, timeout=10),
        requests.get(url, headers={"X-Api-Key": TOKEN}, timeout=10),
        requests.get(url, headers={"Cookie": f"t={TOKEN}"}, timeout=10),
    ]
    assert [r.status_code for r in tries] == [403] * 5
    assert requests.get(url, timeout=10).status_code == 200
    leaks = emu.token_leaks
    assert len(leaks) == 5 and all(leak.status == 403 and leak.video_id for leak in leaks)
    shown = repr([leak.to_dict() for leak in emu.downloads])
    assert TOKEN not in shown and "abcdefghijklmnop" not in shown
    assert leaks[0].headers["Authorization"] == "<removed>"
    assert leaks[3].headers["X-Api-Key"] == "<token>"


def test_polls_and_creates_need_the_token(emu: Emulator, session: requests.Session) -> None:
    video_id = made(session, emu)
    assert session.get(f"{emu.base_url}/videos/{video_id}", timeout=10).status_code == 401
    body = {"account": A, "fileID": emu.issue_file(A), "model": "m"}
    wrong = {"Authorization": "Bearer user:12345-wrong"}
    assert (
        session.post(f"{emu.base_url}/videos/create", json=body, headers=wrong, timeout=10).status_code == 401
    )
    assert [c.status for c in emu.creates] == [200, 401] and emu.polls[0].status == 401


def test_a_file_of_another_account_or_unknown_is_refused(emu: Emulator, session: requests.Session) -> None:
    other = upload(session, emu, B)
    for file_id in (other, "user:12345-minimax:111-file:1"):
        body = {"account": A, "fileID": file_id, "model": "m"}
        resp = session.post(f"{emu.base_url}/videos/create", json=body, headers=AUTH, timeout=10)
        assert resp.status_code == 400 and "not found for account 111" in resp.json()["error"]
    missing_model = session.post(
        f"{emu.base_url}/videos/create",
        json={"account": A, "fileID": upload(session, emu)},
        headers=AUTH,
        timeout=10,
    )
    assert missing_model.status_code == 400 and "model is required" in missing_model.json()["error"]


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [(b"{not json", {}, 400), (b"x" * ((1 << 20) + 1), {}, 413), (b"[1]", {}, 400)],
)
def test_a_create_body_that_is_not_a_json_object_is_refused(
    emu: Emulator, session: requests.Session, data: bytes, headers: dict[str, str], status: int
) -> None:
    resp = session.post(f"{emu.base_url}/videos/create", data=data, headers={**AUTH, **headers}, timeout=10)
    assert resp.status_code == status and resp.json()["code"] == status
    assert emu.creates[0].status == status and emu.videos == []


def test_beyond_max_jobs_an_account_is_answered_429(
    emu: Emulator, session: requests.Session, clock: Clock
) -> None:
    made(session, emu)
    made(session, emu)
    busy = create(session, emu)
    assert busy.status_code == 429 and "maxJobs" in busy.json()["error"]
    assert create(session, emu, B).status_code == 200
    clock.now += 10
    assert create(session, emu).status_code == 200


@pytest.mark.parametrize("status", [412, 422, 429, 596, 502, 503, 504, 402])
def test_a_create_status_fault_answers_it_and_makes_no_video(
    emu: Emulator, session: requests.Session, status: int
) -> None:
    emu.add_fault(
        Fault("status", target="create", status=status, retry_after="20" if status == 429 else None)
    )
    resp = create(session, emu)
    assert resp.status_code == status and resp.json()["code"] == status
    assert resp.headers.get("Retry-After") == ("20" if status == 429 else None)
    assert emu.videos == [] and emu.creates[0].fault == "status"
    assert create(session, emu).status_code == 200  # the next create is served


def test_a_fault_for_the_next_create_leaves_uploads_and_polls_alone(
    emu: Emulator, session: requests.Session
) -> None:
    emu.add_fault(Fault("status", target="create", status=596))
    upload(session, emu)
    assert emu.faults and emu.faults[0].target == "create"
    assert create(session, emu).status_code == 596


def test_a_cut_create_loses_its_answer_but_the_video_is_made(
    emu: Emulator, session: requests.Session
) -> None:
    emu.add_fault(Fault("cut", target="create"))
    with pytest.raises(requests.ConnectionError):
        create(session, emu)
    (record,) = emu.creates
    assert record.cut and record.status == 0 and record.video_id
    assert poll(session, emu, record.video_id).status_code == 200


def test_a_slow_create_made_its_video_before_a_client_that_gave_up(
    emu: Emulator, session: requests.Session
) -> None:
    emu.add_fault(Fault("slow", target="create", delay=5))
    with pytest.raises(requests.Timeout):
        create(session, emu, timeout=0.5)
    (record,) = emu.creates
    assert (
        record.status == 200 and record.video_id and [v["videoId"] for v in emu.videos] == [record.video_id]
    )


def test_a_slow_create_is_answered_after_its_delay(emu: Emulator, session: requests.Session) -> None:
    emu.add_fault(Fault("slow", target="create", delay=0.3))
    answers: list[int] = []
    sender = threading.Thread(target=lambda: answers.append(create(session, emu).status_code))
    sender.start()
    emu.wait_for_held(1, timeout=10)
    assert answers == []
    sender.join(10)
    assert answers == [200]


def test_an_odd_video_id_is_answered_as_asked(emu: Emulator, session: requests.Session) -> None:
    emu.add_fault(Fault("answer", target="create", answer={"videoId": "user:1-minimax:111-video:1/../x"}))
    assert create(session, emu).json()["videoId"] == "user:1-minimax:111-video:1/../x"
    emu.add_fault(Fault("non_json", target="create"))
    assert create(session, emu, B).headers["Content-Type"] == "text/html"


def test_the_next_n_polls_of_any_video_answer_404(emu: Emulator, session: requests.Session) -> None:
    first, second = made(session, emu), made(session, emu, B)
    emu.add_fault(Fault("status", target="poll", status=404, times=2))
    assert [poll(session, emu, v).status_code for v in (second, first, first)] == [404, 404, 200]
    assert [p.fault for p in emu.polls] == ["status", "status", None]


def test_a_poll_fault_for_one_video_leaves_the_others_alone(emu: Emulator, session: requests.Session) -> None:
    first, second = made(session, emu), made(session, emu)
    emu.add_fault(Fault("final", target="poll", video_status=14, video_id=second))
    assert poll(session, emu, first).json()["statusFinal"] is False
    data = poll(session, emu, second).json()
    assert (data["status"], data["statusLabel"], data["statusFinal"]) == (14, "moderated", True)


@pytest.mark.parametrize("final", [3, 5, 7])
def test_a_video_that_ends_failed_or_moderated(
    emu: Emulator, session: requests.Session, clock: Clock, final: int
) -> None:
    emu.add_fault(Fault("final", target="create", video_status=final))
    video_id = made(session, emu)
    clock.now += 10
    data = poll(session, emu, video_id).json()
    assert (data["status"], data["statusFinal"], data["downloadURL"], data["videoURL"]) == (
        final,
        True,
        "",
        "",
    )


def test_a_video_that_never_ends(emu: Emulator, session: requests.Session, clock: Clock) -> None:
    emu.add_fault(Fault("never_ends", target="poll"))
    video_id = made(session, emu)
    poll(session, emu, video_id)
    clock.now += 86_400
    assert poll(session, emu, video_id).json()["statusFinal"] is False


def test_a_cut_poll_has_no_answer(emu: Emulator, session: requests.Session) -> None:
    video_id = made(session, emu)
    emu.add_fault(Fault("cut", target="poll"))
    with pytest.raises(requests.ConnectionError):
        poll(session, emu, video_id)
    assert poll(session, emu, video_id).status_code == 200
    assert [p.status for p in emu.polls] == [0, 200]


def test_an_unknown_video_is_404(emu: Emulator, session: requests.Session) -> None:
    assert poll(session, emu, "user:12345-minimax:111-video:1").status_code == 404
    assert requests.get(f"{emu.origin}/_emulator/downloads/1.mp4", timeout=10).status_code == 404


def test_a_download_of_a_video_not_yet_completed_is_404(emu: Emulator, session: requests.Session) -> None:
    number = made(session, emu).rsplit(":", 1)[1]
    assert requests.get(f"{emu.origin}/_emulator/downloads/{number}.mp4", timeout=10).status_code == 404


def test_a_download_cut_short(emu: Emulator, session: requests.Session, clock: Clock) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    emu.add_fault(Fault("cut", target="download"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    assert emu.downloads[0].size == len(make_mp4()) // 2
    assert requests.get(url, timeout=10).content == make_mp4()  # fetched again


def test_a_download_that_is_html(emu: Emulator, session: requests.Session, clock: Clock) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    emu.add_fault(Fault("html", target="download"))
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert resp.content.startswith(b"<!doctype html>")


@pytest.mark.parametrize("kind", ["huge", "huge_undeclared"])
def test_a_huge_download_is_streamed_until_the_client_stops(
    emu: Emulator, session: requests.Session, clock: Clock, kind: str
) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    size = 10 << 30
    emu.add_fault(Fault(kind, target="download", size=size))  # type: ignore[arg-type]
    with requests.get(url, timeout=10, stream=True) as resp:
        assert resp.headers.get("Content-Length") == (str(size) if kind == "huge" else None)
        received = 0
        for chunk in resp.iter_content(1 << 16):
            received += len(chunk)
            if received >= 4 << 20:
                break
    assert received >= 4 << 20 and emu.downloads[0].size == size


def test_a_download_that_redirects(emu: Emulator, session: requests.Session, clock: Clock) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    emu.add_fault(Fault("redirect", target="download", url="http://127.0.0.1:9/elsewhere.mp4"))
    moved = requests.get(url, timeout=10, allow_redirects=False)
    assert moved.status_code == 302 and moved.headers["Location"] == "http://127.0.0.1:9/elsewhere.mp4"
    emu.add_fault(Fault("redirect", target="download", times=2))  # to itself, twice, then the MP4
    followed = requests.get(url, timeout=10)
    assert len(followed.history) == 2 and followed.content == make_mp4()


def test_a_slow_download_trickles_its_body(emu: Emulator, session: requests.Session, clock: Clock) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    emu.add_fault(Fault("slow", target="download", delay=0.2))
    with requests.get(url, timeout=10, stream=True) as resp:
        started = time.monotonic()
        body = resp.content
        took = time.monotonic() - started
    assert body == make_mp4() and took >= 0.15  # ten pieces, 0.02 s apart


def test_a_download_status_fault(emu: Emulator, session: requests.Session, clock: Clock) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    emu.add_fault(Fault("status", target="download", status=503, times=1))
    assert requests.get(url, timeout=10).status_code == 503
    assert requests.get(url, timeout=10).status_code == 200


def test_video_faults_settings_videos_and_requests_over_the_control_endpoints(
    emu: Emulator, session: requests.Session, clock: Clock
) -> None:
    control = f"{emu.origin}/_emulator"
    resp = session.post(
        f"{control}/faults",
        json=[
            {"kind": "status", "target": "create", "status": 429, "retry_after": 3},
            {"kind": "final", "target": "poll", "video_status": 7},
        ],
        timeout=10,
    )
    assert resp.json() == {"added": 2, "pending": 2}
    bad = session.post(f"{control}/faults", json={"kind": "html", "target": "create"}, timeout=10)
    assert bad.status_code == 400 and "a create fault cannot be 'html'" in bad.json()["error"]
    assert create(session, emu).status_code == 429
    video_id = made(session, emu)
    assert poll(session, emu, video_id).json()["status"] == 7

    assert session.get(f"{control}/settings", timeout=10).json() == {
        "generation_seconds": 10.0,
        "max_jobs": 2,
    }
    changed = session.post(f"{control}/settings", json={"generation_seconds": 0, "max_jobs": 4}, timeout=10)
    assert changed.json() == {"generation_seconds": 0.0, "max_jobs": 4}
    for wrong in ({"generation_seconds": "soon"}, {"colour": 1}, {"max_jobs": 0}, [1]):
        assert session.post(f"{control}/settings", json=wrong, timeout=10).status_code == 400
    quick = made(session, emu)
    videos = session.get(f"{control}/videos", timeout=10).json()
    assert [(v["videoId"], v["status"]) for v in videos] == [(video_id, 7), (quick, 2)]

    kinds = [r["kind"] for r in session.get(f"{control}/requests", timeout=10).json()]
    assert kinds == ["create", "create", "poll", "create"]
    polls = session.get(f"{control}/requests", params={"kind": "poll"}, timeout=10).json()
    assert [(p["video_id"], p["video_status"], p["fault"]) for p in polls] == [(video_id, 7, "final")]
    assert session.delete(f"{control}/requests", timeout=10).json() == {"cleared": 4}
    assert emu.all_requests == []


def test_wait_for_records(emu: Emulator, session: requests.Session) -> None:
    with pytest.raises(TimeoutError, match="create"):
        emu.wait_for_records("create", 1, timeout=0.05)
    made(session, emu)
    assert [r.kind for r in emu.wait_for_records("create", 1, timeout=10)] == ["create"]


def test_the_default_is_a_quick_whole_loop(session: requests.Session) -> None:
    with Emulator(token=TOKEN) as emulator:
        assert emulator.settings == {"generation_seconds": 3.0, "max_jobs": 3}


def test_a_403_fault_on_a_download_is_not_a_token_leak(
    emu: Emulator, session: requests.Session, clock: Clock
) -> None:
    url = completed(session, emu, clock)["downloadURL"]
    emu.add_fault(Fault("status", target="download", status=403))
    assert requests.get(url, timeout=10).status_code == 403
    assert emu.token_leaks == [] and emu.downloads[0].fault == "status"


def test_the_video_urls_may_name_another_host_for_the_same_server(
    session: requests.Session, clock: Clock
) -> None:
    with Emulator(
        token=TOKEN, accounts=(A,), generation_seconds=0, clock=clock, cdn_host="localhost"
    ) as emulator:
        url = poll(session, emulator, made(session, emulator)).json()["downloadURL"]
        assert url.startswith(f"http://localhost:{emulator.port}/_emulator/downloads/")
        assert emulator.base_url.startswith("http://127.0.0.1:")


def raw_request(emu: Emulator, request: bytes) -> bytes:
    """Send bytes as they are on a fresh connection; what the server answered before closing."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_hostile_video_ids_and_download_names_are_404_and_the_server_goes_on(
    emu: Emulator, session: requests.Session, clock: Clock
) -> None:
    for video_id in ("..%2F..%2Fetc%2Fpasswd", "%00", "x" * 10_000, "user:1-minimax:111-video:1%0d%0aX:1"):
        resp = session.get(f"{emu.base_url}/videos/{video_id}", headers=AUTH, timeout=10)
        assert resp.status_code == 404, video_id
    for name in ("..%2F..%2Fetc%2Fpasswd", "1.mp4%00.txt", "-1.mp4", "9" * 40 + ".mp4", "%2e%2e/1.mp4"):
        assert requests.get(f"{emu.origin}/_emulator/downloads/{name}", timeout=10).status_code == 404, name
    assert completed(session, emu, clock)["status"] == 2


def test_hostile_create_framing_is_refused_without_harm(emu: Emulator) -> None:
    head = f"POST /v1/minimax/videos/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    chunked = raw_request(emu, (head + "Transfer-Encoding: chunked\r\n\r\n5\r\n{}{}{\r\n0\r\n\r\n").encode())
    assert chunked.startswith(b"HTTP/1.1 400") and b"Content-Length header is required" in chunked
    short = raw_request(emu, (head + "Content-Length: 100\r\n\r\n{}").encode())
    assert short.startswith(b"HTTP/1.1 400") and b"cut short" in short
    twice = raw_request(emu, (head + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}").encode())
    assert twice.startswith(b"HTTP/1.1 400") and b"framing" in twice
    assert [c.status for c in emu.creates] == [400, 400, 400] and emu.videos == []
