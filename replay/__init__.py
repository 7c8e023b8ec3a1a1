"""shadow-replay: prove a PostgreSQL migration is safe for the code already running.

Capture what the application sends (``replay.capture``), clone the database into a
baseline and a migrated candidate, replay the capture against both and report every
query class the migration breaks.
"""

from __future__ import annotations

__version__ = "0.1.0"
