"""The list of ``replay`` subcommands, one module each."""

from __future__ import annotations

import click

from replay.cli.capture import capture
from replay.cli.inspect import inspect
from replay.cli.report import report

ALL: list[click.Command] = [capture, inspect, report]
