"""Unit tests for `watcher.config.load`: loading real YAML files and precise errors (the token: test_token)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.config_files import write_config
from tests.helpers.imports import imports_of
from watcher.config.effective import describe_effective
from watcher.config.load import (
    DEFAULT_BASE_URL,
    ConfigError,
    default_config_path,
    load_config,
)
from watcher.config.token import resolve_token

TOKEN = "user:12345-abcdefghijklmnop"


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --- valid configs -------------------------------------------------------------------------------


def test_minimal_config_gets_the_defaults(tmp_path: Path, drop: Path) -> None:
    config = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n"))
    assert config.settings.settle_seconds == 2
    assert config.settings.concurrency == 4
    assert config.base_url == DEFAULT_BASE_URL
    assert config.settings.api.token_file is None
    assert len(config.folders) == 1
    folder = config.folders[0]
    assert folder.path == str(drop)
    assert folder.account is None
    assert folder.account_key == ""
    assert folder.recursive is False
    assert folder.polling is False


def test_full_config_with_a_relative_path_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (tmp_path / "srv" / "alice").mkdir(parents=True)
    (etc / "bob").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    path = write_config(
        etc,
        """
api:
  base_url: http://127.0.0.1:8080/v1/minimax/
settle_seconds: 0.5
concurrency: 8
folders:
  - path: ../srv/alice
    account: "123456"
    recursive: true
    polling: true
  - path: bob
""",
    )
    config = load_config(path)
    assert config.settings.settle_seconds == 0.5
    assert config.settings.concurrency == 8
    assert config.base_url == "http://127.0.0.1:8080/v1/minimax"  # trailing slash dropped
    alice, bob = config.folders
    assert alice.path == str(tmp_path / "srv" / "alice")
    assert (alice.account, alice.recursive, alice.polling) == ("123456", True, True)
    assert alice.account_key == "123456"
    assert bob.path == str(etc / "bob")
    assert bob.account is None


def test_integer_settle_seconds_is_accepted(tmp_path: Path, drop: Path) -> None:
    config = load_config(write_config(tmp_path, f"settle_seconds: 3\nfolders:\n  - path: {drop}\n"))
    assert config.settings.settle_seconds == 3.0


# --- errors name the key -------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"setle_seconds: 2\nfolders:\n  - path: {drop}\n"))
    assert "setle_seconds" in message
    assert "unknown key" in message


def test_unknown_key_inside_a_folder(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f'folders:\n  - path: {drop}\n    acount: "1"\n'))
    assert "folders[0].acount" in message
    assert "unknown key" in message


def test_unknown_key_inside_api(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"api:\n  tokenfile: x\nfolders:\n  - path: {drop}\n"))
    assert "api.tokenfile" in message


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('settle_seconds: "2"\n', "settle_seconds"),
        ("concurrency: 1.5\n", "concurrency"),
        ('concurrency: "4"\n', "concurrency"),
        ("settle_seconds: 0\n", "settle_seconds"),
        ("concurrency: 0\n", "concurrency"),
        ("api:\n  base_url: ftp://example.com\n", "api.base_url"),
    ],
)
def test_wrong_top_level_types_and_values(tmp_path: Path, drop: Path, snippet: str, key: str) -> None:
    message = config_error(write_config(tmp_path, snippet + f"folders:\n  - path: {drop}\n"))
    assert f"{key}:" in message


def test_recursive_must_be_a_boolean(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f'folders:\n  - path: {drop}\n    recursive: "yes"\n'))
    assert "folders[0].recursive" in message
    assert "bool" in message


@pytest.mark.parametrize(
    ("key", "snippet"),
    [
        ("folders[0].recursive", "    recursive: yes\n"),
        ("folders[0].recursive", "    recursive: No\n"),
        ("folders[0].polling", "    polling: on\n"),
        ("folders[0].polling", "    polling: OFF\n"),
        ("folders[0].generate.require_prompt_file", "    generate: {model: m, require_prompt_file: yes}\n"),
    ],
)
def test_yaml_11_booleans_are_refused_with_what_to_write(
    tmp_path: Path, drop: Path, key: str, snippet: str
) -> None:
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n{snippet}"))
    word = snippet.split(": ")[-1].strip(" }\n")
    assert message.endswith(f"{key}: {word!r} is not a boolean in this config: write true or false")


def test_pass_proxy_on_is_refused_too(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"hooks:\n  pass_proxy: on\nfolders:\n  - path: {drop}\n"))
    assert message.endswith("hooks.pass_proxy: 'on' is not a boolean in this config: write true or false")


def test_a_yaml_11_boolean_in_params_is_refused_rather_than_sent_as_text(tmp_path: Path, drop: Path) -> None:
    snippet = "    generate: {model: m, params: {watermark: off}}\n"
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n{snippet}"))
    assert "folders[0].generate.params: watermark: 'off': write true or false, or quote it" in message


@pytest.mark.parametrize("word", ["true", "True", "TRUE", "false", "False"])
def test_true_and_false_are_booleans(tmp_path: Path, drop: Path, word: str) -> None:
    config = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n    recursive: {word}\n"))
    assert config.folders[0].recursive is (word.lower() == "true")


def test_yes_where_text_is_expected_is_text(tmp_path: Path, drop: Path) -> None:
    snippet = "    generate: {model: m, prompt: yes, params: {mode: 'on'}}\n"
    config = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n{snippet}"))
    generate = config.folders[0].generate
    assert generate is not None and generate.prompt == "yes"
    assert json.loads(generate.params_json) == {"mode": "on"}


def test_bare_integer_account_suggests_quoting(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n    account: 123456\n"))
    assert "folders[0].account" in message
    assert '"123456"' in message
    assert "quote" in message


def test_non_numeric_account_is_refused(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f'folders:\n  - path: {drop}\n    account: "alice"\n'))
    assert "folders[0].account" in message


def test_missing_folders(tmp_path: Path) -> None:
    message = config_error(write_config(tmp_path, "settle_seconds: 2\n"))
    assert "folders" in message
    assert "missing" in message


def test_empty_folders_list(tmp_path: Path) -> None:
    assert "folders" in config_error(write_config(tmp_path, "folders: []\n"))


def test_empty_file(tmp_path: Path) -> None:
    assert "folders" in config_error(write_config(tmp_path, ""))


def test_folder_missing_on_disk(tmp_path: Path) -> None:
    message = config_error(write_config(tmp_path, "folders:\n  - path: nowhere\n"))
    assert "folders[0].path" in message
    assert "does not exist" in message
    assert str(tmp_path / "nowhere") in message


def test_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    message = config_error(write_config(tmp_path, "folders:\n  - path: afile\n"))
    assert "folders[0].path" in message
    assert "not a directory" in message


def test_same_folder_twice(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n  - path: ./drop/\n"))
    assert "folders[1].path" in message
    assert "folders[0]" in message
    assert "same folder" in message


def test_same_folder_twice_through_a_symlink(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "alias").symlink_to(drop)
    message = config_error(write_config(tmp_path, "folders:\n  - path: drop\n  - path: alias\n"))
    assert "folders[1].path" in message


def test_nested_folders(tmp_path: Path, drop: Path) -> None:
    (drop / "inner").mkdir()
    message = config_error(write_config(tmp_path, "folders:\n  - path: drop/inner\n  - path: drop\n"))
    assert "folders[1].path" in message
    assert "nested" in message


def test_sibling_folders_with_a_common_prefix_are_not_nested(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "drop2").mkdir()
    config = load_config(write_config(tmp_path, "folders:\n  - path: drop\n  - path: drop2\n"))
    assert [f.path for f in config.folders] == [str(drop), str(tmp_path / "drop2")]


def test_invalid_yaml_names_the_line(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n  bad: [\n"))
    assert "YAML" in message
    assert "line 3" in message


def test_missing_config_file(tmp_path: Path) -> None:
    assert "not found" in config_error(tmp_path / "absent.yaml")


def test_default_config_path_prefers_the_environment(tmp_path: Path) -> None:
    assert default_config_path({"MINIMAX_WATCHER_CONFIG": "/x/y.yaml"}) == Path("/x/y.yaml")


# --- the token stays out of what is shown ------------------------------------------------------


def test_config_repr_never_shows_an_inline_token(tmp_path: Path, drop: Path) -> None:
    path = write_config(tmp_path, f'api:\n  token: "{TOKEN}"\nfolders:\n  - path: {drop}\n')
    config = load_config(path)
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(config.settings)


def test_describe_effective_never_contains_the_token(tmp_path: Path, drop: Path) -> None:
    path = write_config(
        tmp_path, f'api:\n  token: "{TOKEN}"\nfolders:\n  - path: {drop}\n    account: "42"\n'
    )
    config = load_config(path)
    token = resolve_token(config, {})
    assert token is not None and token.value == TOKEN
    described = describe_effective(config, token)
    text = json.dumps(described)
    assert TOKEN not in text
    assert "abcdefghijklmnop" not in text
    assert "redacted" in described["api"]["token"]
    assert described["folders"] == [
        {
            "path": str(drop),
            "account": "42",
            "recursive": False,
            "polling": False,
            "media": ["image"],
            "include": ["**"],
            "exclude": [],
            "settle_seconds": 2,
            "done_dir": None,
            "failed_dir": None,
            "generate": "off",
        }
    ]
    assert described["settle_seconds"] == 2
    assert described["concurrency"] == 4
    assert describe_effective(config, None)["api"]["token"] == "<none found>"


# --- a config the agent cannot use at all: always a ConfigError, never another exception --------------


def test_config_that_is_not_utf8(tmp_path: Path, drop: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(f"folders:\n  - path: {drop}\n".encode() + b"# caf\xe9\n")
    assert config_error(path) == f"{path}: not UTF-8 text (byte 0xe9 on line 3); save it as UTF-8"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("folders: " + "[" * 5000 + "]" * 5000 + "\n", id="flow-sequences"),
        pytest.param("folders: " + "{a: " * 5000 + "b" + "}" * 5000 + "\n", id="flow-mappings"),
        # Indentation makes 5,000 levels 12 MB, over the size limit; 1,000 are as deep for the parser.
        pytest.param("".join(" " * i + f"k{i}:\n" for i in range(1000)), id="block-mappings"),
    ],
)
def test_yaml_nested_5000_deep(tmp_path: Path, text: str) -> None:
    message = config_error(write_config(tmp_path, text))
    assert "nested too deeply" in message


@pytest.mark.parametrize(
    "snippet",
    [
        pytest.param("settle_seconds: 2024-02-30\n", id="impossible-date"),
        pytest.param("settle_seconds: !!float two\n", id="bad-float-tag"),
        pytest.param("settle_seconds: !!int 1e999999\n", id="bad-int-tag"),
    ],
)
def test_values_yaml_cannot_construct(tmp_path: Path, drop: Path, snippet: str) -> None:
    message = config_error(write_config(tmp_path, snippet + f"folders:\n  - path: {drop}\n"))
    assert "not valid YAML" in message


def test_a_value_yaml_cannot_construct_is_not_quoted(tmp_path: Path, drop: Path) -> None:
    message = config_error(
        write_config(tmp_path, f"api:\n  token: !!float user:1-SECRETVALUE\nfolders:\n  - path: {drop}\n")
    )
    assert "SECRETVALUE" not in message


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/" + "a" * 4999, "File name too long", id="5000-characters"),
        pytest.param("a/" * 2500, "File name too long", id="too-many-components"),
        pytest.param("loop", "Too many levels of symbolic links", id="symlink-loop"),
    ],
)
def test_folder_path_the_kernel_refuses(tmp_path: Path, path: str, expected: str) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {json.dumps(path)}\n"))
    assert message.startswith(f"{tmp_path / 'config.yaml'}: folders[0].path: cannot reach the folder")
    assert expected in message
    assert len(message) < 600  # a 5,000-character path is shortened, not repeated


def test_folder_path_with_a_nul(tmp_path: Path) -> None:
    message = config_error(write_config(tmp_path, 'folders:\n  - path: "dr\\0op"\n'))
    assert "folders[0].path: the path contains a NUL character" in message


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root enters any folder (tests/e2e/test_config.py runs it as nobody)"
)
def test_folder_behind_a_folder_that_cannot_be_entered(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    (locked / "drop").mkdir(parents=True)
    locked.chmod(0o600)
    try:
        message = config_error(write_config(tmp_path, "folders:\n  - path: locked/drop\n"))
    finally:
        locked.chmod(0o700)
    assert "folders[0].path: cannot reach the folder" in message
    assert "Permission denied" in message


@pytest.mark.parametrize(
    ("path_of", "expected"),
    [
        pytest.param(lambda tmp: tmp / ("c" * 5000), "File name too long", id="5000-characters"),
        pytest.param(lambda tmp: tmp, "Is a directory", id="a-directory"),
        pytest.param(lambda tmp: Path("/dev/zero"), "larger than 1 MiB", id="endless"),
        pytest.param(lambda tmp: tmp / "con\0fig.yaml", "NUL", id="nul"),
    ],
)
def test_config_file_that_cannot_be_read(tmp_path: Path, path_of: Any, expected: str) -> None:
    assert expected in config_error(path_of(tmp_path))


@pytest.mark.parametrize(
    "base_url",
    [
        "http://[::1/v1/minimax",
        "https://api.useapi.net:99999/v1",
        "https://api.useapi.net:x/v1",
        "http:///v1",
        "https://api.use api.net/v1",
        "https://api.useapi.net/v1\n",
    ],
)
def test_base_url_the_client_could_not_use(tmp_path: Path, drop: Path, base_url: str) -> None:
    """Each of these made the client's constructor raise (or every upload fail) instead of exiting 78."""
    message = config_error(
        write_config(tmp_path, f"api:\n  base_url: {json.dumps(base_url)}\nfolders:\n  - path: {drop}\n")
    )
    assert "api.base_url: " in message


def test_damaged_configs_give_only_config_errors(tmp_path: Path, drop: Path) -> None:
    """Whatever bytes a config is damaged into, the answer is a config or a ConfigError, never a crash."""
    valid = (
        f"api:\n  base_url: http://127.0.0.1:8080/v1\n  token_file: token\nsettle_seconds: 0.5\n"
        f'concurrency: 8\nrescan_seconds: 60\nfolders:\n  - path: {drop}\n    account: "123456"\n'
        f"    recursive: true\n  - path: other\n    polling: false\n"
    ).encode()
    (tmp_path / "other").mkdir()
    rng = random.Random(20261130)
    path = tmp_path / "config.yaml"
    for _ in range(400):
        damaged = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(damaged))
            damaged[at : at + rng.randint(0, 3)] = bytes(
                rng.choice(b"\x00\xff\xe9:{}[]-!&*|>'\"\n #%@`") for _ in range(rng.randint(0, 3))
            )
        path.write_bytes(bytes(damaged))
        try:
            config = load_config(path)
            resolve_token(config, {})
        except ConfigError:
            pass


def test_done_and_failed_dirs_resolve_against_the_folder_and_are_checked(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = load_config(
        write_config(tmp_path, f"folders:\n  - path: {drop}\n    done_dir: done\n    failed_dir: ../failed\n")
    )
    [folder] = config.folders
    assert folder.done_dir == str(drop / "done") and folder.failed_dir == str(tmp_path / "failed")
    assert not (drop / "done").exists()  # made when first needed, not by reading the config
    for bad, says in [(".", "watched folder or above"), ("..", "watched folder or above")]:
        with pytest.raises(ConfigError, match=says):
            load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n    done_dir: {bad}\n"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        load_config(
            write_config(tmp_path, f"folders:\n  - path: {drop}\n    failed_dir: {tmp_path / 'file'}/x\n")
        )


def test_a_done_dir_on_another_filesystem_is_refused_at_config_time(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    mounts = (Path(p) for p in ("/dev/shm", "/run", "/sys/fs/cgroup") if Path(p).is_dir())
    other = next((p for p in mounts if p.stat().st_dev != drop.stat().st_dev), None)
    if other is None:
        pytest.skip("no other filesystem mounted here to point a done_dir at")
    with pytest.raises(ConfigError, match="another filesystem"):
        load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n    done_dir: {other}/mmw-done\n"))


def test_a_done_dir_inside_another_watched_folder_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    text = f"folders:\n  - path: {a}\n    done_dir: {b}/done\n  - path: {b}\n"
    with pytest.raises(ConfigError, match="would be uploaded again"):
        load_config(write_config(tmp_path, text))


def test_the_config_modules_import_one_another_without_a_circle() -> None:
    """`token` builds on `load` (the config names the token's sources), `effective` on both."""
    graph = imports_of("watcher.config")
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
