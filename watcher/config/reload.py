"""What a reload brings (SIGHUP): the new config and an API client for it, or a `ConfigError` saying why
the running config stays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from watcher.config.load import Config
from watcher.config.schema import ConfigError
from watcher.core.api_owner import ApiOwner


class Client(Protocol):
    @property
    def owner(self) -> ApiOwner: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Client)


def reloaded(
    load: Callable[[], Config],
    client_for: Callable[[Config], C],
    listen: Callable[[str | None], None],
    owner: ApiOwner,
) -> tuple[Config, C]:
    """Load the config again and make its client; `listen` moves the metrics server (or refuses).

    The token or base URL may have changed (a token file that cannot be read refuses the reload like a
    bad key would). The token's user and the base URL may not: the index and every "done" were judged
    for them, and only a start judges anew.
    """
    new = load()
    client = client_for(new)
    listen(new.settings.metrics.listen)
    if client.owner != owner:
        client.close()
        raise ConfigError(
            f"the token's user or the base URL changed ({client.owner.describe()}); restart the agent "
            "to switch"
        )
    return new, client
