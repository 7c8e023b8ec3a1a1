"""The capture addon and recorder at the unit level (mitmproxy's taddons, no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from replay.capture import decoder as decoder_module
from replay.capture import frames
from replay.capture.addon import PostgresCapture
from replay.capture.decoder import Decoder
from replay.capture.format import CaptureWriter, read_records
from replay.capture.recorder import ConnectionTap, Recorder
from replay.errors import CaptureError
from replay.model.records import SessionEnd, Statement
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
    recorder = Recorder(str(tmp_path / "cap"))
    recorder.start()
    tap = recorder.tap("10.0.0.1:5555")
    assert tap is not None
    play(tap)
    recorder.stop()  # hands the rest to the decoder process, which closes the capture
    records = list(read_records(tmp_path / "cap"))
    statements = [r for r in records if isinstance(r, Statement)]
    assert [s.sql for s in statements] == ["select 1"]
    assert statements[0].rows == 1
    assert recorder.stats.statements == 1 and recorder.stats.recorded == 1


def test_a_failing_decoder_costs_its_connection_not_the_capture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = decoder_module.ConnectionTracker

    class Exploding(real):  # type: ignore[misc, valid-type]
        def server_data(self, data: bytes, ts: float) -> None:
            if self.session_id.endswith("-1"):
                raise RuntimeError("a decoder bug")
            super().server_data(data, ts)

    monkeypatch.setattr(decoder_module, "ConnectionTracker", Exploding)
    decoder = Decoder(CaptureWriter(tmp_path / "cap"))
    for tap_id in (1, 2):
        decoder.handle((tap_id, frames.OPEN, f"client:{tap_id}".encode(), 1.0))
        for side, data in conversation():
            kind = frames.CLIENT if side == "client" else frames.SERVER
            decoder.handle((tap_id, kind, data, 1.0))
        decoder.handle((tap_id, frames.CLOSED, b"", 1.0))
    decoder.close()
    records = list(read_records(tmp_path / "cap"))
    ends = {r.id.rsplit("-", 1)[1]: r for r in records if isinstance(r, SessionEnd)}
    assert not ends["1"].recorded and ends["1"].reason == "recorder error"
    assert ends["2"].recorded
    assert [s.sql for s in records if isinstance(s, Statement)] == ["select 1"]


def test_backlog_over_its_byte_limit_stops_recording_that_connection(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path / "cap"), max_backlog=1000)
    tap = recorder.tap("a:1")  # the feeder is not running yet: the backlog only grows
    assert tap is not None
    for side, data in conversation():
        getattr(tap, side)(data)
    tap.server(build.data_row([b"x" * 2000]))  # a burst the recorder has not caught up with
    tap.client(build.query("select 2"))  # past the limit: not taken any more
    recorder.start()
    recorder.stop()
    ends = [r for r in read_records(tmp_path / "cap") if isinstance(r, SessionEnd)]
    assert len(ends) == 1 and not ends[0].recorded
    assert "fell behind" in ends[0].reason
    assert not tap.enabled


def test_frames_survive_any_split() -> None:
    sent = [
        (1, frames.OPEN, b"1.2.3.4:5", 1.5),
        (1, frames.CLIENT, b"x" * 70000, 2.5),
        (2, frames.SERVER, b"", 3.5),
        (1, frames.CLOSED, b"", 4.5),
    ]
    stream = frames.encode(sent)
    for step in (1, 7, 4096, len(stream)):
        reader = frames.FrameReader()
        got = [f for i in range(0, len(stream), step) for f in reader.feed(stream[i : i + step])]
        assert got == sent and reader.pending == 0


def test_a_capture_folder_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    recorder = Recorder(str(tmp_path / "file" / "cap"))
    with pytest.raises(CaptureError, match="cannot create capture folder"):
        recorder.start()
