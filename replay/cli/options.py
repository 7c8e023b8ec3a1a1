"""Options that mean the same in several commands, declared once."""

from __future__ import annotations

import click

from replay.compare import FAIL_ON_LEVELS

fail_on_option = click.option(
    "--fail-on",
    default="fails",
    show_default=True,
    type=click.Choice(FAIL_ON_LEVELS),
    help="Exit 1 when a query class's verdict is at or above this level.",
)

slower_factor_option = click.option(
    "--slower-factor",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=1.0, min_open=True),
    help="How many times slower than the baselines a class must be to be 'slower'.",
)
