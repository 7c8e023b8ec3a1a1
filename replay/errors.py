"""The one error hierarchy of shadow-replay.

Library code raises these; the CLI turns them into a one-line message on stderr and
exit code 2. Anything else escaping is a bug.
"""

from __future__ import annotations


class ReplayError(Exception):
    """Base of every error a user can cause or fix: bad input or bad setup."""


class BadInput(ReplayError):
    """An argument, file or capture that cannot be used as given."""


class CaptureError(BadInput):
    """A capture folder that is missing, unreadable or of an unknown format."""


class SetupError(ReplayError):
    """The environment is not usable: a server is unreachable, a tool is missing."""


class MigrationError(SetupError):
    """A migration failed to apply to the candidate."""


class UnsafeTarget(BadInput):
    """A replay target that is the capture's source: replay never writes there."""
