"""Image to video as a user sees it (SPEC §8), with the real agent and the real emulator over loopback:
an image dropped into a `generate` folder gets its sidecar, then its MP4 in `videos/` and its
`<image>.video.json`; a prompt file and an end frame change what is asked for; the on_video hook,
the metrics and `status` tell the operator."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.images import png_bytes, sha256
from tests.helpers.videos import (
    MODEL,
    Samples,
    command,
    free_port,
    generate,
    is_mp4,
    mp4s,
    scrape,
    status_json,
    video_record_of,
    wait_video,
)
from watcher.emulator import Emulator, Fault

SPEC_FIELDS = {
    "videoId", "account", "fileID", "model", "prompt", "params", "status", "statusLabel", "submittedAt",
    "finishedAt", "video", "size", "sha256", "error",
}  # fmt: skip
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Videos made in a second (the shared fixture's take three)."""
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


def test_a_dropped_image_becomes_an_mp4_with_its_video_record(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    params = {"options": "768p-6sec"}
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "generate": generate(params=params)}])
    image = drop / "cat.png"
    image.write_bytes(png_bytes(23001))

    sidecar = wait_sidecar(image, timeout=20)
    record = wait_video(image)

    assert set(record) == SPEC_FIELDS
    assert record["status"] == "done" and record["error"] is None, record
    assert (record["account"], record["fileID"], record["model"]) == (ACCOUNT_A, sidecar["fileID"], MODEL)
    assert (record["prompt"], record["params"]) == ("slow dolly in", params)
    assert ISO_UTC.match(record["submittedAt"]) and ISO_UTC.match(record["finishedAt"]), record
    assert record["submittedAt"] <= record["finishedAt"]
    assert record["video"] == "videos/cat.mp4"
    video = drop / "videos" / "cat.mp4"
    assert is_mp4(video)
    assert record["size"] == video.stat().st_size and record["sha256"] == sha256(video.read_bytes())
    assert mp4s(drop) == [video]

    [create] = emulator.creates
    assert create.status == 200 and create.video_id == record["videoId"]
    assert create.body == {"account": ACCOUNT_A, "fileID": sidecar["fileID"], "model": MODEL,
                           "prompt": "slow dolly in", "options": "768p-6sec"}  # fmt: skip
    [made] = [v for v in emulator.videos if v["videoId"] == record["videoId"]]
    assert record["statusLabel"] and made["status"] == 2
    assert [d.status for d in emulator.downloads] == [200]
    assert emulator.token_leaks == []
    assert {p.video_id for p in emulator.polls} == {record["videoId"]}
    assert len(emulator.uploads) == 1  # the MP4 is never uploaded back


def test_a_prompt_file_wins_and_an_end_frame_is_uploaded_and_sent_but_gets_no_video(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}])
    (drop / "cat.txt").write_text("the cat yawns, camera pans left\n")
    (drop / "cat.end.png").write_bytes(png_bytes(23011))
    (drop / "cat.png").write_bytes(png_bytes(23010))
    (drop / "dog.png").write_bytes(png_bytes(23012))  # no prompt file: the folder's prompt

    cat, dog = wait_video(drop / "cat.png"), wait_video(drop / "dog.png")
    end = wait_sidecar(drop / "cat.end.png")

    assert (cat["status"], dog["status"]) == ("done", "done"), (cat, dog)
    assert cat["prompt"] == "the cat yawns, camera pans left"  # as sent; the trailing newline is not
    assert dog["prompt"] == "slow dolly in"
    by_file = {c.body["fileID"]: c.body for c in emulator.creates}
    cat_body = by_file[read_json(sidecar_of(drop / "cat.png"))["fileID"]]  # type: ignore[index]
    assert cat_body["prompt"] == cat["prompt"] and cat_body["end_frame_fileID"] == end["fileID"]
    dog_body = by_file[read_json(sidecar_of(drop / "dog.png"))["fileID"]]  # type: ignore[index]
    assert dog_body["prompt"] == "slow dolly in" and "end_frame_fileID" not in dog_body
    assert end["fileID"] in {u.file_id for u in emulator.uploads}
    # The end frame had its sidecar before cat.png's create was sent (the create names its fileID);
    # the journal shows both images' videos ended and nothing else waiting.
    [folder] = status_json(agent.workdir)["folders"]
    recent = folder["videos"].pop("recent")
    assert folder["videos"] == {"queued": 0, "generating": 0, "done": 2, "failed": 0, "unknown": 0,
                                "in_progress": []}  # fmt: skip
    assert sorted(v["file"] for v in recent) == ["cat.png", "dog.png"]
    assert len(emulator.creates) == 2
    assert not video_record_of(drop / "cat.end.png").exists()
    assert sorted(p.name for p in mp4s(drop)) == ["cat.mp4", "dog.mp4"]


HOOK = """#!{python}
import json, os, sys
out = {out!r}
event = {{"env": dict(os.environ), "stdin": sys.stdin.read()}}
name = "%s-%d.json" % (os.environ.get("MINIMAX_EVENT"), os.getpid())
with open(os.path.join(out, name + ".tmp"), "w") as f:
    json.dump(event, f)
os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))
"""


def hook_runs(out: Path, event: str) -> list[dict[str, Any]]:
    return [data for path in sorted(out.glob(f"{event}-*.json")) if (data := read_json(path)) is not None]


def test_on_video_hook_and_metrics_tell_of_the_finished_video(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    out = tmp_path / "hook-out"
    out.mkdir()
    program = tmp_path / "on-video"
    program.write_text(HOOK.format(python=sys.executable, out=str(out)))
    program.chmod(0o755)
    port = free_port()
    emulator.configure(generation_seconds=8)  # long enough to see it in flight
    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}],
        metrics={"listen": f"127.0.0.1:{port}"},
        hooks={"on_video": [str(program)], "timeout_seconds": 20},
    )
    image = drop / "wave.png"
    image.write_bytes(png_bytes(23020))
    in_flight = ("minimax_watcher_videos_in_flight", (("account", ACCOUNT_A),))

    wait_for(lambda: scrape(port).get(in_flight) == 1, 30, "one video in flight in the metrics")
    record = wait_video(image)
    [run] = wait_for(lambda: hook_runs(out, "video"), 30, "the on_video hook")

    assert record["status"] == "done", record
    video = drop / "videos" / "wave.mp4"
    env = run["env"]
    assert env["MINIMAX_VIDEO"] == str(video) and env["MINIMAX_VIDEO_ID"] == record["videoId"]
    assert env["MINIMAX_FILE"] == str(image) and env["MINIMAX_ACCOUNT"] == ACCOUNT_A
    assert json.loads(run["stdin"]) == record
    assert "USEAPI_TOKEN" not in env and all(TOKEN not in value for value in env.values())
    assert is_mp4(Path(env["MINIMAX_VIDEO"]))

    def finished() -> Samples | None:
        samples = scrape(port)
        return samples if samples.get(in_flight) == 0 else None

    samples = wait_for(finished, 20, "no video in flight in the metrics")
    totals = {
        labels: value for (name, labels), value in samples.items() if name == "minimax_watcher_videos_total"
    }
    assert totals == {(("account", ACCOUNT_A), ("result", "completed")): 1}
    assert samples[("minimax_watcher_video_seconds_count", ())] == 1
    assert samples[("minimax_watcher_video_seconds_sum", ())] >= 8 * 0.8  # submit to file on disk


def test_status_shows_done_and_generating_videos_and_the_days_count(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "generate": generate(max_per_day=5)}])
    (drop / "first.png").write_bytes(png_bytes(23030))
    wait_video(drop / "first.png", status="done")
    emulator.add_fault(Fault("never_ends", target="create"))  # the next one stays in progress while we look
    (drop / "second.png").write_bytes(png_bytes(23031))

    def generating() -> dict[str, Any] | None:
        report = status_json(agent.workdir)
        [folder] = report["folders"]
        progress = folder["videos"]["in_progress"]
        return report if progress and progress[0]["percent"] > 0 else None

    report = wait_for(generating, 60, "second.png generating with a percent in `status --json`", interval=1)
    [folder] = report["folders"]
    videos = folder["videos"]
    assert (videos["done"], videos["generating"], videos["queued"], videos["failed"]) == (1, 1, 0, 0)
    [progress] = videos["in_progress"]
    assert progress["file"] == "second.png" and 0 < progress["percent"] < 100
    [account] = report["video_accounts"]
    assert (account["account"], account["today"], account["cap"]) == (ACCOUNT_A, 2, 5)
    assert (account["in_flight"], account["max_jobs"]) == (1, 2)

    text = command(agent.workdir, "status")
    assert text.returncode == 0, text.stderr
    assert "  videos: queued 0, generating 1, done 1, failed 0, unknown 0\n" in text.stdout
    assert re.search(r"^    generating second\.png: [1-9]\d?%$", text.stdout, re.M), text.stdout
    assert f"videos, account={ACCOUNT_A}: 2 of 5 today (UTC), 1 of 2 in flight\n" in text.stdout
