"""The config schema as the single source: every key documented in it, and docs/config.md's reference,
the shipped config.yaml and `check-config --sample` all exactly what it renders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, Field

from tests.helpers.config_files import check_config_alone
from watcher.config.load import (
    ApiSettings,
    FolderSettings,
    GenerateSettings,
    MetricsSettings,
    Settings,
    load_config,
)
from watcher.config.sample import render_sample

REPO = Path(__file__).resolve().parents[3]
REGENERATE = (
    "render it again: `minimax-watcher check-config --sample` for docs/config.md's block; for config.yaml, "
    "its leading comment lines followed by render_sample(CONFIG_YAML_VALUES) (in this test)"
)
# The example folder, and a `generate` block that shows the whole loop in seconds under --emulate.
CONFIG_YAML_VALUES = {
    "folders.path": "drop/example",
    "folders.generate.prompt": "slow dolly in, soft light",
    "folders.generate.max_per_day": 10,
    "folders.generate.poll_seconds": 1,
    "status_page.listen": "127.0.0.1:8765",  # "Try it" ends on the page
}


def readme_reference() -> str:
    """The YAML block of the config reference, docs/config.md."""
    section = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    match = re.search(r"^```yaml\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert match is not None, "docs/config.md has no ```yaml block"
    return match.group(1)


# ---- the schema documents itself --------------------------------------------------------------------


@pytest.mark.parametrize("model", [Settings, ApiSettings, MetricsSettings, FolderSettings, GenerateSettings])
def test_every_key_has_a_description(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
    # And a value to show: rendering refuses a key with neither a default nor an example.
    render_sample()


def test_the_sample_states_each_bound_of_the_schema() -> None:
    sample = render_sample()
    assert "settle_seconds: 2  # default; > 0, <= 3600\n" in sample
    assert "concurrency: 4  # default; >= 1, <= 64\n" in sample
    assert "rescan_seconds: 300  # default; >= 1\n" in sample
    assert "folders:  # required; at least 1\n" in sample
    assert "  - path: /srv/drop/alice  # required\n" in sample
    assert '    # account: "123456"  # optional\n' in sample  # an id must be quoted
    assert "  # token_file: /etc/minimax-watcher/token  # optional\n" in sample
    assert "metrics:\n" in sample and "  # listen: 127.0.0.1:9464  # optional\n" in sample


def test_the_sample_is_a_valid_config_with_the_defaults() -> None:
    data = yaml.safe_load(render_sample())
    settings = Settings.model_validate(data)
    assert settings.api == ApiSettings()
    assert settings.settle_seconds == Settings.model_fields["settle_seconds"].default
    assert settings.concurrency == Settings.model_fields["concurrency"].default
    assert settings.rescan_seconds == Settings.model_fields["rescan_seconds"].default
    assert settings.folders == [FolderSettings(path="/srv/drop/alice")]
    assert settings.metrics == MetricsSettings()  # off: `metrics:` with its one key commented out
    # Optional keys without a default are shown commented out, so they stay unset.
    assert "token_file" not in data["api"] and "account" not in data["folders"][0]
    # So is the optional `generate` block, whole: the sample makes no videos.
    assert "    # generate:  # optional\n" in render_sample() and "generate" not in data["folders"][0]


def test_an_optional_block_given_a_value_is_shown_whole_and_valid() -> None:
    sample = render_sample({"folders.generate.poll_seconds": 1})
    assert "    generate:  # optional\n" in sample
    assert "      model: I2V-2.3  # required\n" in sample
    assert "      poll_seconds: 1  # default 15; >= 1, <= 3600\n" in sample
    assert "      # prompt: slow dolly in  # optional\n" in sample  # optional without default: unset
    folder = Settings.model_validate(yaml.safe_load(sample)).folders[0]
    assert folder.generate == GenerateSettings(model="I2V-2.3", poll_seconds=1)


def test_a_mapping_value_is_rendered_as_yaml_reads_it_back() -> None:
    values = {"folders.generate.params": {"options": "768p-6sec", "odd": "a, b {c}", "n": [1, "x]"]}}
    data = yaml.safe_load(render_sample(values))
    assert data["folders"][0]["generate"]["params"] == values["folders.generate.params"]


def test_every_key_of_the_schema_is_in_the_sample() -> None:
    sample = render_sample()
    for model, indent in (
        (Settings, ""),
        (ApiSettings, "  "),
        (MetricsSettings, "  "),
        (FolderSettings, "    "),
        (GenerateSettings, "      "),
    ):
        for name in model.model_fields:
            key = re.compile(rf"^(  - |{indent}|{indent}# ){name}:", re.MULTILINE)
            assert key.search(sample), f"{model.__name__}.{name} is missing from the sample"


def test_a_constraint_the_sample_cannot_state_is_refused() -> None:
    class Odd(BaseModel):
        even: int = Field(2, multiple_of=2, description="An even number.")

    with pytest.raises(TypeError, match="constraint"):
        render_sample(schema=Odd)


def test_a_key_without_a_description_is_refused() -> None:
    class Mute(BaseModel):
        quiet: int = 1

    with pytest.raises(TypeError, match="description"):
        render_sample(schema=Mute)


# ---- docs/config.md, config.yaml and --sample are what the schema renders -----------------------------------


def test_readme_config_reference_is_the_rendered_schema() -> None:
    assert readme_reference() == render_sample(), (
        f"docs/config.md's config reference has drifted: {REGENERATE}"
    )


def test_shipped_config_yaml_is_the_rendered_schema_with_the_example_folder() -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    rendered = render_sample(CONFIG_YAML_VALUES)
    assert text.endswith(rendered), f"config.yaml has drifted: {REGENERATE}"
    header = text.removesuffix(rendered).splitlines()
    assert all(line.startswith("#") or not line.strip() for line in header), header


def test_shipped_config_yaml_loads(tmp_path: Path) -> None:
    (tmp_path / "drop" / "example").mkdir(parents=True)
    copy = tmp_path / "config.yaml"
    copy.write_bytes((REPO / "config.yaml").read_bytes())
    config = load_config(copy)
    assert [f.path for f in config.folders] == [str(tmp_path / "drop" / "example")]
    # The whole loop, image to MP4, in seconds under --emulate: a model, a prompt, a quick poll.
    generate = config.folders[0].generate
    assert generate is not None and generate.model and generate.prompt
    assert generate.poll_seconds <= 2
    assert generate.output_dir == str(tmp_path / "drop" / "example" / "videos")


class _LongerDefault(Settings):
    settle_seconds: float = Field(
        3.0, gt=0, le=3600, description=Settings.model_fields["settle_seconds"].description
    )


class _TighterBound(Settings):
    concurrency: int = Field(4, ge=1, le=32, description=Settings.model_fields["concurrency"].description)


class _FolderWithMedia(FolderSettings):
    media: str = Field("image", description="Which files are uploaded.")


class _NewFolderKey(Settings):
    folders: list[_FolderWithMedia] = Field(  # type: ignore[assignment]
        min_length=1, description=Settings.model_fields["folders"].description
    )


class _NewTopKey(Settings):
    hooks_timeout: float = Field(60.0, gt=0, description="Seconds a hook may run.")


@pytest.mark.parametrize("changed", [_LongerDefault, _TighterBound, _NewFolderKey, _NewTopKey])
def test_a_change_to_the_schema_shows_in_what_the_readme_is_compared_with(changed: type[Settings]) -> None:
    """A key, default or bound added to the schema changes the rendering, so the docs/config.md test fails."""
    assert render_sample(schema=changed) != readme_reference()


def test_check_config_sample_prints_the_rendered_schema_without_any_config(tmp_path: Path) -> None:
    result = check_config_alone(tmp_path, "--sample")
    assert result.returncode == 0, result.stderr
    assert result.stdout == render_sample()
    assert result.stderr == ""
