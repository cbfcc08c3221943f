"""Whose fileID a sidecar holds: the token's user at the configured base URL, or someone else's."""

from __future__ import annotations

from watcher.core.api_owner import ApiOwner, normalized_base_url, user_of

REAL = "https://api.useapi.net/v1/minimax"
SIDECAR = {"fileID": "user:4242-minimax:1-file:2", "ossPath": "https://oss.example/x.png", "baseUrl": REAL}


def test_the_user_is_the_prefix_of_a_token_or_a_file_id() -> None:
    assert user_of("user:4242-abcdef") == "4242"
    assert user_of("user:4242-minimax:1-file:2") == "4242"
    assert user_of("4242-abc") is None and user_of(None) is None and user_of("user:-x") is None


def test_a_sidecar_counts_only_for_its_user_and_base_url() -> None:
    mine = ApiOwner.of(REAL + "/", "user:4242-secret")
    assert mine.owns(SIDECAR)
    assert not mine.owns({**SIDECAR, "fileID": "user:1-minimax:1-file:2"})  # the emulator's user
    assert not mine.owns({**SIDECAR, "baseUrl": "http://127.0.0.1:8787/v1/minimax"})  # another endpoint
    assert not mine.owns({**SIDECAR, "baseUrl": 12})
    assert not ApiOwner.of(REAL, "user:7-other").owns(SIDECAR)


def test_without_a_token_only_the_base_url_is_compared() -> None:
    reader = ApiOwner.of(REAL, None)
    assert reader.user is None and reader.owns(SIDECAR)
    assert not reader.owns({**SIDECAR, "baseUrl": "http://127.0.0.1:1/v1/minimax"})


def test_an_older_sidecar_is_judged_by_its_user_and_an_emulators_loopback_oss_path() -> None:
    legacy = {k: v for k, v in SIDECAR.items() if k != "baseUrl"}
    assert ApiOwner.of(REAL, "user:4242-t").owns(legacy)  # an upgrade uploads nothing again
    emulated = {**legacy, "ossPath": "http://127.0.0.1:40123/oss/1.png"}
    assert not ApiOwner.of(REAL, "user:4242-t").owns(emulated)
    assert ApiOwner.of("http://127.0.0.1:40123/v1/minimax", "user:4242-t").owns(emulated)


def test_the_recorded_base_url_carries_no_credentials_and_the_key_differs_per_owner() -> None:
    assert (
        normalized_base_url("HTTPS://me:pw@API.example:8443/v1/minimax/")
        == "https://api.example:8443/v1/minimax"
    )
    keys = {
        ApiOwner.of(REAL, "user:1-a").key,
        ApiOwner.of(REAL, "user:2-a").key,
        ApiOwner.of(REAL + "x", "user:1-a").key,
    }
    assert len(keys) == 3 and ApiOwner.of(REAL, "user:1-a").key == ApiOwner.of(REAL + "/", "user:1-b").key
