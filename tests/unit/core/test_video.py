"""The values every part of image to video shares: the intent's key and body, end frames by name."""

from __future__ import annotations

from watcher.core.video import VideoRequest, is_end_frame


def test_the_body_keeps_account_file_model_and_prompt_over_params() -> None:
    request = VideoRequest(
        "/drop", "a.png", "111", "file:1", "ab" * 32, "I2V", "pan", '{"account":"999","options":"768p"}'
    )
    assert request.body() == {
        "account": "111",
        "fileID": "file:1",
        "model": "I2V",
        "prompt": "pan",
        "options": "768p",
    }


def test_the_key_changes_with_the_prompt_and_the_place_not_with_nothing() -> None:
    base = VideoRequest("/drop", "a.png", "111", "file:1", "ab" * 32, "I2V", "pan")
    assert base.key == VideoRequest("/drop", "a.png", "111", "file:2", "ab" * 32, "I2V", "pan").key
    assert base.key != VideoRequest("/drop", "a.png", "111", "file:1", "ab" * 32, "I2V", "tilt").key
    assert base.key != VideoRequest("/drop", "b.png", "111", "file:1", "ab" * 32, "I2V", "pan").key


def test_an_end_frame_is_known_by_its_name_alone() -> None:
    """Whatever order the two files arrive in, `x.end.png` never becomes a video of its own."""
    assert is_end_frame("shot.end.png") and is_end_frame("IMG_1.end.JPG") and is_end_frame("a.b.end.webp")
    assert not is_end_frame("shot.png")
    assert not is_end_frame(".end.png")  # a dot-file, not an end frame of anything
    assert not is_end_frame("shot.end.txt")  # not an image
    assert not is_end_frame("weekend.png")
