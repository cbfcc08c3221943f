"""The emulated videos as state over an injected clock: their course, the create's checks, the
per-account max_jobs, and what each create and poll fault does to them (no sockets here)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from watcher.emulator.faults import Fault
from watcher.emulator.videos import Outcome, Studio, download_name

UID, A, B = "12345", "111", "222"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def studio(clock: Clock) -> Studio:
    made = Studio(uid=UID, accounts=(A, B), generation_seconds=10.0, max_jobs=2, clock=clock)
    for account in (A, B):
        made.issue(account, f"file-{account}")
    return made


def no_fault(*_: str) -> None:
    return None


def faults(*pending: Fault) -> Any:
    """A `take` that hands out these faults in order, then none."""
    queue = list(pending)
    return lambda *_: queue.pop(0) if queue else None


def body(account: str = A, **extra: Any) -> dict[str, Any]:
    return {"account": account, "fileID": f"file-{account}", "model": "I2V-2.3", **extra}


def answer(outcome: Outcome) -> tuple[int, Any]:
    assert outcome.answer is not None
    return outcome.answer.status, json.loads(outcome.answer.body)


def poll(studio: Studio, video_id: str, take: Any = no_fault) -> dict[str, Any]:
    status, data = answer(studio.poll(video_id, take, "http://emu"))
    assert status == 200
    return dict(data)


def create(studio: Studio, take: Any = no_fault, **extra: Any) -> str:
    status, data = answer(studio.create(body(**extra), take))
    assert status == 200, data
    return str(data["videoId"])


def test_a_video_is_queued_then_processing_with_a_rising_percent_then_completed(
    studio: Studio, clock: Clock
) -> None:
    video_id = create(studio)
    assert video_id.startswith(f"user:{UID}-minimax:{A}-video:")
    seen = []
    for _ in range(12):
        data = poll(studio, video_id)
        seen.append((data["status"], data["statusFinal"], data["percent"]))
        clock.now += 1
    assert seen[0] == (11, False, 0) and seen[1] == (11, False, 0)
    processing = [percent for status, final, percent in seen if status == 12 and not final]
    assert (
        processing == sorted(processing) and len(processing) == 8 and 0 < processing[0] < processing[-1] < 100
    )
    assert seen[-1] == (2, True, 100)


def test_a_completed_video_has_download_urls_on_the_emulator_and_a_label(
    studio: Studio, clock: Clock
) -> None:
    video_id = create(studio)
    assert poll(studio, video_id)["downloadURL"] == ""
    clock.now += 10
    data = poll(studio, video_id)
    number = video_id.rsplit(":", 1)[1]
    assert data["statusLabel"] == "completed" and data["message"] == ""
    assert data["downloadURL"] == f"http://emu/_emulator/downloads/{number}.mp4"
    assert data["videoURL"] == f"http://emu/_emulator/downloads/{number}-wm.mp4"
    assert set(data) >= {"videoId", "width", "height"}
    assert download_name(f"{number}.mp4") == download_name(f"{number}-wm.mp4") == int(number)


def test_only_a_completed_video_is_downloadable(studio: Studio, clock: Clock) -> None:
    number = create(studio).rsplit(":", 1)[1]
    assert studio.downloadable(f"{number}.mp4") is None
    clock.now += 10
    assert studio.downloadable(f"{number}.mp4") is not None
    assert studio.downloadable("999.mp4") is None
    assert studio.downloadable(f"{number}.mp4.exe") is None
    assert studio.downloadable(f"../{number}.mp4") is None


def test_an_account_runs_at_most_max_jobs_videos_and_a_finished_one_frees_its_slot(
    studio: Studio, clock: Clock
) -> None:
    create(studio)
    clock.now += 5
    create(studio)
    status, data = answer(studio.create(body(), no_fault))
    assert status == 429 and "2 of maxJobs 2" in data["error"]
    create(studio, account=B)  # another account has its own slots
    clock.now += 5  # the first one is done
    create(studio)


def test_a_refused_create_takes_no_fault(studio: Studio) -> None:
    taken: list[str] = []
    outcome = studio.create({"account": A, "fileID": "nope", "model": "m"}, lambda a: taken.append(a))
    assert outcome.answer is not None and outcome.answer.status == 400
    assert taken == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (["a list"], "must be a JSON object"),
        ({"fileID": "file-111", "model": "m"}, "account is required when several accounts"),
        ({"account": "333", "fileID": "file-111", "model": "m"}, "Account 333 not found"),
        ({"account": 111, "fileID": "file-111", "model": "m"}, "Account 111 not found"),
        ({"account": A, "model": "m"}, "fileID is required"),
        ({"account": A, "fileID": "file-999", "model": "m"}, "fileID file-999 was not found for account 111"),
        ({"account": A, "fileID": "file-222", "model": "m"}, "was not found for account 111"),
        ({"account": A, "fileID": "file-111"}, "model is required"),
        ({"account": A, "fileID": "file-111", "model": ""}, "model is required"),
        ({"account": A, "fileID": "file-111", "model": "m", "prompt": 3}, "prompt must be a string"),
        ({"account": A, "fileID": "file-111", "model": "m", "prompt": "x" * 2001}, "at most 2000"),
        (
            {"account": A, "fileID": "file-111", "model": "m", "end_frame_fileID": "f"},
            "end_frame_fileID f was",
        ),
    ],
)
def test_a_bad_create_is_a_400_that_says_why_and_makes_no_video(
    studio: Studio, data: Any, problem: str
) -> None:
    status, error = answer(studio.create(data, no_fault))
    assert status == 400 and problem in error["error"]
    assert studio.videos() == []


def test_the_account_may_be_omitted_when_there_is_only_one(clock: Clock) -> None:
    alone = Studio(uid=UID, accounts=(A,), generation_seconds=1, max_jobs=1, clock=clock)
    alone.issue(A, "file-111")
    status, data = answer(
        alone.create({"fileID": "file-111", "model": "m", "end_frame_fileID": "file-111"}, no_fault)
    )
    assert status == 200 and data["account"] == A


def test_a_status_fault_on_create_refuses_it_with_retry_after_and_makes_no_video(studio: Studio) -> None:
    outcome = studio.create(body(), faults(Fault("status", target="create", status=429, retry_after="7")))
    assert outcome.answer is not None and outcome.answer.status == 429
    assert ("Retry-After", "7") in outcome.answer.headers
    assert outcome.video is None and studio.videos() == []


def test_a_cut_create_makes_the_video_but_answers_nothing(studio: Studio) -> None:
    outcome = studio.create(body(), faults(Fault("cut", target="create")))
    assert outcome.answer is None and outcome.video is not None
    assert [v["videoId"] for v in studio.videos()] == [outcome.video.video_id]


def test_a_slow_create_makes_the_video_and_holds_its_answer(studio: Studio) -> None:
    outcome = studio.create(body(), faults(Fault("slow", target="create", delay=2.5)))
    assert outcome.hold == 2.5 and outcome.video is not None and answer(outcome)[0] == 200


def test_an_answer_fault_changes_fields_or_replaces_the_answer(studio: Studio) -> None:
    odd = Fault("answer", target="create", answer={"videoId": "../../etc/passwd"})
    status, data = answer(studio.create(body(), faults(odd)))
    assert status == 200 and data["videoId"] == "../../etc/passwd" and data["account"] == A
    replaced = Fault("answer", target="create", answer=["not", "an", "object"], status=201)
    assert answer(studio.create(body(account=B), faults(replaced))) == (201, ["not", "an", "object"])
    assert len(studio.videos()) == 2  # both were made: an odd answer may have spent credits


@pytest.mark.parametrize("final", [3, 5, 7, 14])
def test_a_final_fault_on_create_ends_the_video_so_when_its_time_is_up(
    studio: Studio, clock: Clock, final: int
) -> None:
    video_id = create(studio, faults(Fault("final", target="create", video_status=final)))
    assert poll(studio, video_id)["statusFinal"] is False
    clock.now += 10
    data = poll(studio, video_id)
    assert (data["status"], data["statusFinal"], data["downloadURL"]) == (final, True, "")
    assert data["statusLabel"] == ("failed" if final == 3 else "moderated") and data["message"]


def test_a_final_fault_on_a_poll_ends_that_video_at_once_and_frees_its_slot(studio: Studio) -> None:
    first, second = create(studio), create(studio)
    data = poll(studio, second, faults(Fault("final", target="poll", video_status=5)))
    assert (data["status"], data["statusFinal"]) == (5, True)
    assert poll(studio, second)["status"] == 5  # it stays so
    assert poll(studio, first)["statusFinal"] is False
    create(studio)


def test_a_video_that_never_ends(studio: Studio, clock: Clock) -> None:
    video_id = create(studio, faults(Fault("never_ends", target="create")))
    clock.now += 1_000_000
    data = poll(studio, video_id)
    assert (data["status"], data["statusFinal"], data["percent"]) == (12, False, 99)
    polled = create(studio, account=B)
    poll(studio, polled, faults(Fault("never_ends", target="poll")))
    clock.now += 1_000_000
    assert poll(studio, polled)["statusFinal"] is False


def test_poll_faults_status_cut_and_non_json(studio: Studio) -> None:
    video_id = create(studio)
    removed = studio.poll(video_id, faults(Fault("status", target="poll", status=404)), "")
    assert removed.answer is not None and removed.answer.status == 404 and removed.video is not None
    assert studio.poll(video_id, faults(Fault("cut", target="poll")), "").answer is None
    html = studio.poll(video_id, faults(Fault("non_json", target="poll")), "").answer
    assert html is not None and html.content_type == "text/html"


def test_an_unknown_video_is_404_and_takes_no_fault(studio: Studio) -> None:
    taken: list[str] = []
    outcome = studio.poll("user:1-minimax:1-video:1", lambda *a: taken.append("x"), "")
    assert outcome.answer is not None and outcome.answer.status == 404 and taken == []


def test_poll_faults_are_asked_for_with_the_videos_account_and_id(studio: Studio) -> None:
    video_id = create(studio, account=B)
    asked: list[tuple[str, ...]] = []
    studio.poll(video_id, lambda *args: asked.append(args), "")
    assert asked == [(B, video_id)]


def test_settings_apply_to_videos_created_afterwards(studio: Studio, clock: Clock) -> None:
    before = create(studio)
    studio.configure(generation_seconds=0, max_jobs=5)
    after = create(studio)
    assert poll(studio, after)["status"] == 2
    assert poll(studio, before)["status"] == 11
    for bad in ({"generation_seconds": -1}, {"max_jobs": 0}):
        with pytest.raises(ValueError):
            studio.configure(**bad)


def test_the_bodys_own_max_jobs_sets_the_accounts_limit(studio: Studio) -> None:
    create(studio, maxJobs=3)
    create(studio, maxJobs=3)
    create(studio, maxJobs=3)
    status, data = answer(studio.create(body(maxJobs=3), no_fault))
    assert status == 429 and "3 of maxJobs 3" in data["error"]
    for wrong in (0, 11, "3", True):
        status, data = answer(studio.create(body(maxJobs=wrong), no_fault))
        assert status == 400 and "maxJobs must be an integer from 1 to 10" in data["error"]
