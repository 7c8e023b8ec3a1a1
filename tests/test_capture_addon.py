"""The capture addon and recorder at the unit level (mitmproxy's taddons, no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from replay.capture import recorder as recorder_module
from replay.capture.addon import PostgresCapture
from replay.capture.format import CaptureWriter, read_records
from replay.capture.recorder import ConnectionTap, Recorder
from replay.records import SessionEnd, Statement
from replay.wire import build


def test_options_are_validated() -> None:
    addon = PostgresCapture()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pg_capture_sample="0.5")
        for bad in ("0", "1.5", "half"):
            with pytest.raises(exceptions.OptionsError, match="sample"):
                tctx.configure(addon, pg_capture_sample=bad)
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(addon, pg_capture_copy_cap=-1)


def conversation() -> list[tuple[str, bytes]]:
    """A login and one query, in the order a real client and server take turns."""
    return [
        ("client", build.startup({"user": "app", "database": "db"})),
        ("server", build.auth(0) + build.ready("I")),
        ("client", build.query("select 1")),
        ("server", build.row_description([("x", 23)]) + build.data_row([b"1"])
         + build.command_complete("SELECT 1") + build.ready("I")),
    ]  # fmt: skip


def play(tap: ConnectionTap) -> None:
    for side, data in conversation():
        getattr(tap, side)(data)
    tap.closed()


def test_recorder_writes_what_the_taps_saw(tmp_path: Path) -> None:
    recorder = Recorder(CaptureWriter(tmp_path / "cap"))
    tap = recorder.tap("10.0.0.1:5555")
    assert tap is not None
    play(tap)
    recorder.stop()  # drains without the thread ever having started
    records = list(read_records(tmp_path / "cap"))
    statements = [r for r in records if isinstance(r, Statement)]
    assert [s.sql for s in statements] == ["select 1"]
    assert statements[0].rows == 1
    assert recorder.stats.statements == 1 and recorder.stats.recorded == 1


def test_a_failing_decoder_costs_its_connection_not_the_capture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = recorder_module.ConnectionTracker

    class Exploding(real):  # type: ignore[misc, valid-type]
        def server_data(self, data: bytes, ts: float) -> None:
            if self.session_id.endswith("-1"):
                raise RuntimeError("a decoder bug")
            super().server_data(data, ts)

    monkeypatch.setattr(recorder_module, "ConnectionTracker", Exploding)
    recorder = Recorder(CaptureWriter(tmp_path / "cap"))
    first, second = recorder.tap("a:1"), recorder.tap("b:2")
    assert first is not None and second is not None
    play(first)
    play(second)
    recorder.stop()
    records = list(read_records(tmp_path / "cap"))
    ends = {r.id.rsplit("-", 1)[1]: r for r in records if isinstance(r, SessionEnd)}
    assert not ends["1"].recorded and ends["1"].reason == "recorder error"
    assert ends["2"].recorded
    assert [s.sql for s in records if isinstance(s, Statement)] == ["select 1"]


def test_backlog_over_its_byte_limit_stops_recording_that_connection(tmp_path: Path) -> None:
    recorder = Recorder(CaptureWriter(tmp_path / "cap"), max_backlog=1000)
    tap = recorder.tap("a:1")
    assert tap is not None
    for side, data in conversation():
        getattr(tap, side)(data)
    tap.server(build.data_row([b"x" * 2000]))  # a burst the recorder has not caught up with
    tap.client(build.query("select 2"))  # past the limit: not taken any more
    recorder.stop()
    ends = [r for r in read_records(tmp_path / "cap") if isinstance(r, SessionEnd)]
    assert len(ends) == 1 and not ends[0].recorded
    assert "fell behind" in ends[0].reason
    assert not tap.enabled
