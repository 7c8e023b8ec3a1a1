"""The list of ``replay`` subcommands, one module each."""

from __future__ import annotations

import click

from replay.cli.capture import capture
from replay.cli.demo import demo
from replay.cli.inspect import inspect
from replay.cli.report import report
from replay.cli.run import run

ALL: list[click.Command] = [capture, demo, inspect, report, run]
