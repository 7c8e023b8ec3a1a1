"""``python -m replay`` runs the command line, like the ``replay`` script."""

from __future__ import annotations

from replay.cli import main

main()
