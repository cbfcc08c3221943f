"""A folder's `generate` block (SPEC §8) in the config schema: its keys, bounds and descriptions, and the
checks that need no disk (`watcher.config.load` resolves output_dir)."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watcher.config.yaml_words import Yaml11Word
from watcher.core.video import MAX_PROMPT_CHARS

# Keys of videos/create the agent sets itself: `params` could otherwise replace the image or the account.
RESERVED_PARAMS = ("account", "fileID", "model", "prompt", "end_frame_fileID")
MAX_MODEL_CHARS = 100


class GenerateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)  # as every section's

    model: str = Field(
        description="The video model, sent to videos/create as `model` (see useapi.net's docs).",
        examples=["I2V-2.3"],
    )
    prompt: str | None = Field(
        None,
        description=(
            "The prompt sent with each image, unless a prompt file <stem>.txt beside the image holds "
            f"its own (UTF-8, at most {MAX_PROMPT_CHARS:,} characters). Unset and without a prompt file, "
            "the video is asked for without a prompt."
        ),
        examples=["slow dolly in"],
    )
    params: dict[str, Any] = Field(
        {},
        description=(
            "Other keys of videos/create, passed as given (the model's own, e.g. options, resolution, "
            "duration). account, fileID, model, prompt and end_frame_fileID are the agent's to set."
        ),
    )
    output_dir: str = Field(
        "videos",
        description=(
            "Where the MP4s go, keeping each image's path below the folder: relative to the folder, or "
            "absolute (any filesystem). Never watched; not the folder itself, not inside done_dir, "
            "failed_dir or another watched folder."
        ),
    )
    max_jobs: int = Field(
        2,
        ge=1,
        le=10,
        description=(
            "Videos in flight at once per account (useapi.net suggests 2-3 for free plans, 3-4 for "
            "paid). Folders sharing an account share its slots: the smallest max_jobs of them holds."
        ),
    )
    max_per_day: int = Field(
        50,
        ge=0,
        description=(
            "New videos asked for per account per UTC day, kept across restarts and retries: the hard "
            "stop on spending. 0 asks for none (videos in flight still finish). Folders sharing an "
            "account share the count: the smallest max_per_day of them holds."
        ),
    )
    poll_seconds: float = Field(
        15.0, ge=1, le=3600, description="How often each video in flight is asked for its progress."
    )
    require_prompt_file: bool = Field(
        False,
        description=("Each image waits for its prompt file <stem>.txt instead of taking the prompt above."),
    )

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name the video model, e.g. I2V-2.3")
        if value != value.strip() or any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
            raise ValueError(f"{value[:80]!r}: a model name has no spaces or control characters")
        if len(value) > MAX_MODEL_CHARS:
            raise ValueError(f"longer than {MAX_MODEL_CHARS} characters; is this the model's name?")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("is empty; leave it out to send no prompt")
        if "\0" in value:
            raise ValueError("contains a NUL character")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(f"has {len(value):,} characters; at most {MAX_PROMPT_CHARS:,}")
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        if value is None:
            return {}  # `params:` with nothing under it
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of videos/create's keys, e.g. {options: 768p-6sec}")
        taken = [key for key in RESERVED_PARAMS if key in value]
        if taken:
            raise ValueError(
                f"{', '.join(taken)}: set by the agent (the folder's account, the image's fileID, the "
                "model and prompt keys above, the end frame's fileID); remove it from params"
            )
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"{repr(key)[:40]}: each key must be a non-empty name")
            problem = _json_problem(item)
            if problem is not None:
                raise ValueError(f"{key[:80]}: {problem}")
        return value

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, value: str) -> str:
        if not value.strip() or "\0" in value:
            raise ValueError("must name a folder, e.g. videos")
        return value


def _json_problem(value: Any, depth: int = 0) -> str | None:
    """Why `value` cannot be sent as JSON (a YAML date, a NaN, a nested mapping with a non-text key)."""
    if depth > 20:
        return "nested too deeply"
    if isinstance(value, Yaml11Word):  # YAML 1.1 read it as a boolean: say which was meant
        return f"{str(value)!r}: write true or false, or quote it to send it as text"
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    if isinstance(value, list):
        return next((p for p in (_json_problem(v, depth + 1) for v in value) if p), None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "a mapping's keys must be text"
        return next((p for p in (_json_problem(v, depth + 1) for v in value.values()) if p), None)
    return f"a {type(value).__name__} cannot be sent as JSON; quote it"
