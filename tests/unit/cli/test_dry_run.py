"""`scan --dry-run` on real folders: each pending file with the type it would be sent as, or why it would
not be sent; done files left out; one line each, refusals after, then the total."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from tests.helpers import ACCOUNT_A
from tests.helpers.images import png_bytes
from watcher.cli.dry_run import PlannedUpload, plan, render
from watcher.config.load import load_config
from watcher.core.media import MAX_UPLOAD_BYTES
from watcher.core.signature import signature_of
from watcher.disk.records import build_sidecar


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
        name: (None, "default") for name in ("empty.png", "huge.png", "text.png", "n" * 250 + ".png")
    }
    assert got["empty.png"].problem == "empty: waits for its first write"
    assert got["huge.png"].problem == "over 5 GB: the API refuses it"
    assert got["huge.png"].size == MAX_UPLOAD_BYTES + 1
    assert got["text.png"].problem is not None and "not a PNG, JPEG or WebP image" in got["text.png"].problem
    assert (got["n" * 250 + ".png"].problem or "").startswith("the file name is 254 bytes")


def test_the_listing_puts_refusals_after_and_totals_what_would_go() -> None:
    text = render(
        [
            PlannedUpload("/d/bad\x1b.png", None, 7, "default", "empty\x07"),
            PlannedUpload("/d/a.png", "image/png", 1_500_000, "111"),
            PlannedUpload("/d/b.jpg", "image/jpeg", 1_000_000, "111"),
        ]
    )
    assert text.splitlines() == [
        "/d/a.png\timage/png\t1500000\t111",
        "/d/b.jpg\timage/jpeg\t1000000\t111",
        "/d/bad\\x1b.png\t-\t7\tdefault\tnot uploaded: empty\\x07",
        "2 files would be uploaded (2.5 MB), 1 not",
    ]
    assert render([]) == "0 files would be uploaded (0.0 MB), 0 not"
