"""`scan --dry-run` on real folders: each pending file with the type it would be sent as, or why it would
not be sent; done files left out; one line each, refusals after, then the total."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from tests.helpers import ACCOUNT_A
from tests.helpers.images import png_bytes
from watcher.cli.dry_run import MAX_LISTED, PlannedUpload, plan, render
from watcher.config.load import load_config
from watcher.core.media import MAX_UPLOAD_BYTES
from watcher.core.signature import signature_of
from watcher.disk.records import build_error_record, build_sidecar


def planned(drop: Path, account: str | None = ACCOUNT_A) -> dict[str, PlannedUpload]:
    config_file = drop.parent / "config.yaml"
    folder = {"path": str(drop), "recursive": True} | ({"account": account} if account else {})
    config_file.write_text(yaml.safe_dump({"folders": [folder]}))
    return {os.path.relpath(p.path, drop): p for p in plan(load_config(config_file))}


def test_each_pending_file_is_planned_with_its_type_size_and_account(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    (drop / "a.png").write_bytes(png_bytes(1))
    (drop / "sub" / "b.png").write_bytes(png_bytes(2))
    done = drop / "done.png"
    done.write_bytes(png_bytes(3))
    sidecar = build_sidecar(image_path=str(done), account=ACCOUNT_A, file_id=f"user:1-minimax:{ACCOUNT_A}-file:3",
                            oss_path="oss/3", signature=signature_of(os.stat(done)), sha256="0" * 64,
                            content_type="image/png")  # fmt: skip
    (drop / "done.png.json").write_text(json.dumps(sidecar))
    got = planned(drop)
    assert got == {
        "a.png": PlannedUpload(str(drop / "a.png"), "image/png", len(png_bytes(1)), ACCOUNT_A),
        os.path.join("sub", "b.png"): PlannedUpload(
            str(drop / "sub" / "b.png"), "image/png", len(png_bytes(2)), ACCOUNT_A
        ),
    }


def test_what_would_be_refused_says_why(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "empty.png").write_bytes(b"")
    with open(drop / "huge.png", "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: costs no disk
    (drop / "text.png").write_bytes(b"not an image at all, just some words")
    (drop / ("n" * 250 + ".png")).write_bytes(png_bytes(4))
    got = planned(drop, account=None)
    assert {name: (p.content_type, p.account) for name, p in got.items()} == {
        name: (None, "-") for name in ("empty.png", "huge.png", "text.png", "n" * 250 + ".png")
    }
    assert got["empty.png"].problem == "empty: waits for its first write"
    assert got["huge.png"].problem == "over 5 GB: the API refuses it"
    assert got["huge.png"].size == MAX_UPLOAD_BYTES + 1
    assert got["text.png"].problem is not None and "not a PNG, JPEG or WebP image" in got["text.png"].problem
    assert (got["n" * 250 + ".png"].problem or "").startswith("the file name is 254 bytes")


def test_the_listing_puts_refusals_after_and_totals_what_would_go() -> None:
    text = render(
        [
            PlannedUpload("/d/bad\x1b.png", None, 7, "-", "empty\x07"),
            PlannedUpload("/d/a.png", "image/png", 1_500_000, "111"),
            PlannedUpload("/d/b.jpg", "image/jpeg", 1_000_000, "111"),
        ]
    )
    assert text.splitlines() == [
        "/d/a.png\timage/png\t1500000\t111",
        "/d/b.jpg\timage/jpeg\t1000000\t111",
        "/d/bad\\x1b.png\t-\t7\t-\tnot uploaded: empty\\x07",
        "2 files would be uploaded (2.5 MB), 1 not: 1 refused",
    ]
    assert render([]) == "0 files would be uploaded (0 B), 0 not"
    assert render([PlannedUpload("/d/a.png", "image/png", 69, "1")]) == (
        "/d/a.png\timage/png\t69\t1\n1 file would be uploaded (69 B), 0 not"
    )


def everything(drop: Path, **settings: object) -> dict[str, PlannedUpload]:
    config_file = drop.parent / "config.yaml"
    folder = {"path": str(drop), "account": ACCOUNT_A, **settings}
    config_file.write_text(yaml.safe_dump({"folders": [folder]}))
    return {os.path.relpath(p.path, drop) + ("/" if p.path.endswith("/") else ""): p
            for p in plan(load_config(config_file), everything=True)}  # fmt: skip


def test_every_file_not_uploaded_is_listed_with_why(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    for folder in ("sub", ".cache", "failed", "renders"):
        (drop / folder).mkdir(parents=True)
    (drop / "a.png").write_bytes(png_bytes(1))
    (drop / "sub" / "deep.png").write_bytes(png_bytes(2))  # include '*.png' is the top level only
    (drop / "renders" / "r.png").write_bytes(png_bytes(3))
    (drop / "a_preview.png").write_bytes(png_bytes(4))
    (drop / "notes.txt").write_text("hello")
    (drop / "x.png.part").write_bytes(b"x")
    (drop / ".hidden.png").write_bytes(png_bytes(5))
    (drop / "a.png.json").write_text("{}")  # a sidecar that does not match: a.png is still pending
    (drop / "link.png").symlink_to(drop / "a.png")
    os.mkfifo(drop / "pipe.png")
    done = drop / "done.png"
    done.write_bytes(png_bytes(6))
    sidecar = build_sidecar(image_path=str(done), account=ACCOUNT_A, file_id=f"user:1-minimax:{ACCOUNT_A}-file:6",
                            oss_path="oss/6", signature=signature_of(os.stat(done)), sha256="0" * 64,
                            content_type="image/png")  # fmt: skip
    (drop / "done.png.json").write_text(json.dumps(sidecar))
    got = everything(
        drop, recursive=True, include=["*.png", "renders/**"], exclude=["*_preview.*"], failed_dir="failed"
    )
    why = {name: (p.reason, p.problem) for name, p in got.items() if p.content_type is None}
    assert got["a.png"].content_type == "image/png" and got["renders/r.png"].content_type == "image/png"
    assert why == {
        "sub/deep.png": ("filtered", "matched by no include glob ('*.png', 'renders/**'): '*.png' matches at "
                         "the top only; '**/*.png' matches at any depth"),
        "a_preview.png": ("filtered", "excluded by exclude '*_preview.*'"),
        "notes.txt": ("kind", "not of the folder's media (image: .png .jpg .jpeg .webp)"),
        "x.png.part": ("name", "a writer's temporary name (~, .tmp, .part...): uploaded once renamed"),
        ".hidden.png": ("name", "a dot-file: never uploaded"),
        "a.png.json": ("record", "a record the agent writes (sidecar, error record or video record)"),
        "done.png.json": ("record", "a record the agent writes (sidecar, error record or video record)"),
        "done.png": ("done", "already uploaded (its sidecar matches)"),
        "link.png": ("not_file", "a symlink: never followed"),
        "pipe.png": ("not_file", "not a regular file (a FIFO, socket or device)"),
        ".cache/": ("folder", "a dot-folder: never looked into"),
        "failed/": ("folder", "the folder's failed_dir: never uploaded from"),
    }  # fmt: skip
    assert got["notes.txt"].size == 5


def test_a_folder_that_is_not_recursive_says_its_subfolders_are_not_looked_into(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    (drop / "sub" / "deep.png").write_bytes(png_bytes(1))
    got = everything(drop)
    assert list(got) == ["sub/"]
    assert got["sub/"].problem == "a subfolder: not looked into (the folder has recursive: false)"


def test_a_failed_file_says_its_error_and_how_to_take_it_again(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    bad = drop / "bad.png"
    bad.write_bytes(png_bytes(1))
    record = build_error_record(
        error="HTTP 400: nope", code=400, attempts=1, signature=signature_of(os.stat(bad))
    )
    (drop / "bad.png.error.json").write_text(json.dumps(record))
    got = everything(drop)
    assert got["bad.png"].reason == "failed"
    assert got["bad.png"].problem == (
        "failed before: HTTP 400: nope; tried again when the file changes, or by `minimax-watcher retry`"
    )


def test_the_listing_is_bounded_per_reason_and_counts_the_rest_with_sizes() -> None:
    done = [
        PlannedUpload(f"/d/{i:03}.png", None, 1_500_000, "1", "already uploaded", "done") for i in range(25)
    ]
    folder = PlannedUpload("/d/.git/", None, 0, "1", "a dot-folder: never looked into", "folder")
    lines = render([PlannedUpload("/d/new.png", "image/png", 2048, "1"), *done, folder]).splitlines()
    assert len(lines) == 1 + MAX_LISTED + 1 + 1 + 1
    assert lines[MAX_LISTED + 1] == "... and 5 more already uploaded (7.5 MB)"
    assert (
        lines[-1]
        == "1 file would be uploaded (2.0 KB), 25 not: 25 already uploaded; 1 folder not looked into"
    )
