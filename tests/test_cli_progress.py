"""Progress of ``replay run`` where stderr is not a terminal: periodic lines, not silence."""

from __future__ import annotations

import pytest

from replay.cli.run import _Bar


def test_without_a_terminal_progress_is_a_line_every_interval_and_one_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = [100.0]
    bar = _Bar(every=10.0, clock=lambda: now[0], terminal=False)
    for step in range(1, 31):  # 30 updates, 1 s apart over 29 s: lines at 10 s and 20 s
        bar(step * 100, 3000)
        now[0] += 1.0
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "replaying: 1,100 of 3,000 statements (37%), 110/s"
    assert len(lines) == 3  # two periodic, one final
    assert lines[-1].startswith("replaying: 3,000 of 3,000 statements (100%)")


def test_a_replay_with_nothing_done_prints_no_progress_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bar = _Bar(terminal=False)
    bar.close()
    assert capsys.readouterr().err == ""
