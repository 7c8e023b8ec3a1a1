"""The run's central type: a database the capture is replayed against.

Made by :mod:`replay.targets.clone` (or named by the user), checked by
:mod:`replay.targets.safety`, replayed against by :mod:`replay.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

from replay.targets.conninfo import strip_password


@dataclass(frozen=True)
class Target:
    """A database the capture is replayed against; ``created`` if this run made it."""

    name: str
    conninfo: str
    created: bool = False

    @property
    def display(self) -> str:
        """The conninfo without its password, for messages and run.json."""
        return strip_password(self.conninfo)
