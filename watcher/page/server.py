"""The status page in the agent: bound at start (an address that cannot be served is a config error,
exit 78), serving from READY, following a reload (kept, moved or stopped), stopped with the agent."""

from __future__ import annotations

import logging
from pathlib import Path

from watcher.config.load import Config, ConfigError
from watcher.config.status_page import PageSettings, page_settings
from watcher.core.api_owner import ApiOwner
from watcher.page.app import SECURITY_HEADERS, PageApp
from watcher.report.listener import Listener
from watcher.report.metrics import bind_problem

log = logging.getLogger("watcher")

MAX_CONNECTIONS = 32
MAX_FILE_ANSWERS = 4  # videos and thumbnails being sent at once


class StatusPage:
    """`state_dir` None: no page (the `scan` command), whatever the config says."""

    def __init__(self, state_dir: Path | None, owner: ApiOwner) -> None:
        self._state_dir, self._owner = state_dir, owner
        self._settings: PageSettings | None = None
        self._listener: Listener | None = None
        self._app: PageApp | None = None
        self._serving = False

    @property
    def address(self) -> tuple[str, int] | None:
        return (self._listener.host, self._listener.port) if self._listener is not None else None

    def configure(self, config: Config) -> None:
        """At start: read the settings and bind the port; raises `ConfigError`."""
        settings = page_settings(config) if self._state_dir is not None else None
        if settings is not None:
            self._bind(config, settings)

    def serve(self) -> None:
        """Answer from now on (at READY); again after a reload, harmless."""
        self._serving = True
        if self._listener is not None and not self._listener.running:
            self._listener.start()
            log.info("status page on http://%s", config_listen(self._listener))

    def reload(self, config: Config) -> None:
        """The new config's page: the same address keeps its listener; a problem leaves the page off."""
        if self._state_dir is None:
            return
        try:
            settings = page_settings(config)
        except ConfigError as exc:
            log.error("status page stopped: %s", exc)
            self.stop()
            return
        if settings is not None and self._settings is not None and settings.listen == self._settings.listen:
            assert self._app is not None
            self._app.update(config, settings.password)
            self._settings = settings
            return
        self.stop()
        if settings is None:
            return
        try:
            self._bind(config, settings)
        except ConfigError as exc:
            log.error("status page stopped: %s", exc)
            return
        if self._serving:
            self.serve()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._listener, self._app, self._settings = None, None, None

    def _bind(self, config: Config, settings: PageSettings) -> None:
        assert self._state_dir is not None
        app = PageApp(config, self._state_dir, self._owner, settings.password)
        host, port = settings.listen
        try:
            listener = Listener(
                host,
                port,
                app,
                name="status page",
                max_connections=MAX_CONNECTIONS,
                max_files=MAX_FILE_ANSWERS,
                headers=SECURITY_HEADERS,
            )
        except OSError as exc:
            shown = config.settings.status_page.listen
            raise ConfigError(f"status_page.listen: cannot listen on {shown}: {bind_problem(exc)}") from None
        self._listener, self._app, self._settings = listener, app, settings


def config_listen(listener: Listener) -> str:
    host = f"[{listener.host}]" if ":" in listener.host else listener.host
    return f"{host}:{listener.port}/"
