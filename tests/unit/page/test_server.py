"""`watcher.page.server.StatusPage`: bound at start (a port in use is a config error), serving from
READY, kept or moved by a reload, stopped with the agent; over real sockets."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import TOKEN
from tests.helpers.page import BASE_URL, Site, answers
from watcher.config.load import Config, ConfigError, load_config
from watcher.core.api_owner import ApiOwner
from watcher.page.server import StatusPage


def config_with(site: Site, page: dict[str, Any] | None) -> Config:
    settings = yaml.safe_load(site.config.source.read_text())
    settings["status_page"] = page
    site.config.source.write_text(yaml.safe_dump(settings))
    return load_config(site.config.source)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def page(site: Site) -> Any:
    made = StatusPage(site.state, ApiOwner.of(BASE_URL, TOKEN))
    yield made
    made.stop()


def test_bound_at_start_served_from_ready(site: Site, page: StatusPage) -> None:
    port = free_port()
    page.configure(config_with(site, {"listen": f"127.0.0.1:{port}"}))
    assert page.address == ("127.0.0.1", port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as early:
        early.sendall(b"GET /api/status HTTP/1.1\r\n\r\n")  # waits in the backlog until READY
        page.serve()
        early.settimeout(20)
        assert early.recv(100).startswith(b"HTTP/1.1 200 OK")
    page.stop()
    assert answers(port, "/api/status") is None


def test_a_port_in_use_is_a_config_error(site: Site, page: StatusPage) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"status_page.listen: cannot listen on 127.0.0.1:{port}: the port is in use"
        ):
            page.configure(config_with(site, {"listen": f"127.0.0.1:{port}"}))


def test_a_reload_keeps_moves_or_stops_the_page(site: Site, page: StatusPage) -> None:
    port, other = free_port(), free_port()
    page.configure(config_with(site, {"listen": f"127.0.0.1:{port}"}))
    page.serve()
    page.reload(config_with(site, {"listen": f"127.0.0.1:{port}"}))
    assert page.address == ("127.0.0.1", port) and answers(port, "/api/status") is not None
    page.reload(config_with(site, {"listen": f"127.0.0.1:{other}"}))
    assert answers(other, "/api/status") is not None and answers(port, "/api/status") is None
    page.reload(config_with(site, None))
    assert page.address is None and answers(other, "/api/status") is None


def test_a_password_file_readable_by_others_is_refused(site: Site, page: StatusPage, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a-password-of-some-length\n")
    secret.chmod(0o644)
    config = config_with(site, {"listen": f"0.0.0.0:{free_port()}", "password_file": str(secret)})
    with pytest.raises(ConfigError, match="other users can read"):
        page.configure(config)
    secret.chmod(0o600)
    page.configure(config)
    assert page.address is not None


def test_no_page_for_the_scan_command(site: Site) -> None:
    page = StatusPage(None, ApiOwner.of(BASE_URL, TOKEN))
    page.configure(config_with(site, {"listen": f"127.0.0.1:{free_port()}"}))
    page.serve()
    assert page.address is None
