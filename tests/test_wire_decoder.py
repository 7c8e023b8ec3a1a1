"""The wire decoders frame both directions however the stream is split, and treat
nonsense the way the server would: desynchronize, never raise, never allocate on a
declared length."""

from __future__ import annotations

import struct
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from replay.wire import build as b
from replay.wire import messages as m
from replay.wire.decoder import BackendDecoder, FrontendDecoder, _Framer

FRONTEND = (
    b.ssl_request()
    + b.startup({"user": "app", "database": "shop", "application_name": "web"}, minor=2)
    + b.password("hunter2")
    + b.query("select 1; select 2")
    + b.parse("select $1::int", "s1", [23])
    + b.bind([b"1"], statement="s1")
    + b.describe("P")
    + b.execute(max_rows=10)
    + b.close("S", "s1")
    + b.flush()
    + b.sync()
    + b.copy_data(b"1\tx\n")
    + b.copy_done()
    + b.copy_fail("oops")
    + b.function_call(1598, [b"\x00"])
    + b.terminate()
)

BACKEND = (
    b"N"
    + b.auth(10, b"SCRAM-SHA-256\0\0")
    + b.auth(0)
    + b.parameter_status("server_version", "17.0")
    + b.backend_key_data(4242, b"k" * 32)
    + b.negotiate_protocol(0)
    + b.ready("I")
    + b.row_description([("a", 23), ("b", 25)])
    + b.data_row([b"1", None])
    + b.data_row([b"2", b"two"])
    + b.command_complete("SELECT 2")
    + b.empty_query()
    + b.error("42601", "syntax error")
    + b.notice("careful")
    + b.notification(1, "chan", "payload")
    + b.parse_complete()
    + b.bind_complete()
    + b.close_complete()
    + b.no_data()
    + b.portal_suspended()
    + b.parameter_description([23, 25])
    + b.copy_in_response(2)
    + b.copy_out_response(2)
    + b.message(b"W", b"\0\0\0")
    + b.copy_data(b"1\t2\n")
    + b.copy_done()
    + b.function_result(b"ok")
    + b.ready("T")
)


def kinds(messages: list[m.Message]) -> list[int]:
    return [kind for kind, _ in messages]


def test_frontend_whole_stream() -> None:
    out = FrontendDecoder().feed(FRONTEND)
    assert kinds(out) == [m.SSL_REQUEST, m.STARTUP, *b"pQPBDECHSdcfFX"]
    protocol, params = m.parse_startup(out[1][1])
    assert protocol == "3.2"
    assert params == {"user": "app", "database": "shop", "application_name": "web"}
    assert out[2] == (m.F_PASSWORD, b"")  # the password is skipped, not kept
    assert m.parse_query(out[3][1]) == "select 1; select 2"
    assert m.parse_parse(out[4][1]) == ("s1", "select $1::int", [23])
    assert m.parse_bind(out[5][1]) == ("", "s1", [], [b"1"], [])
    assert m.parse_execute(out[7][1]) == ("", 10)
    assert m.parse_function_call(out[14][1]) == 1598


def test_backend_whole_stream() -> None:
    out = BackendDecoder().feed(BACKEND)
    assert kinds(out) == [m.SSL_ANSWER, *b"RRSKvZTDDCIENA123nstGHWdcVZ"]
    assert out[0] == (m.SSL_ANSWER, b"N")
    # Authentication exchanges and cancel keys are not handed out.
    assert out[1] == (m.B_AUTHENTICATION, b"")
    assert out[4] == (m.B_BACKEND_KEY_DATA, b"")
    assert m.parse_row_description(out[7][1]) == [("a", 23), ("b", 25)]
    assert m.parse_command_complete(out[10][1]) == "SELECT 2"
    assert m.parse_error(out[12][1]).sqlstate == "42601"


def test_gssenc_then_ssl_then_startup() -> None:
    front = FrontendDecoder()
    stream = b.gssenc_request() + b.ssl_request() + b.startup({"user": "u"})
    assert kinds(front.feed(stream)) == [m.GSSENC_REQUEST, m.SSL_REQUEST, m.STARTUP]
    back = BackendDecoder()
    assert kinds(back.feed(b"NN" + b.auth(0))) == [m.SSL_ANSWER, m.SSL_ANSWER, ord("R")]


def test_ssl_accepted_means_encrypted() -> None:
    back = BackendDecoder()
    back.feed(b"S\x16\x03\x03\x00\x10")
    assert back.desynchronized and "TLS" in back.reason
    front = FrontendDecoder()
    front.feed(b.ssl_request() + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
    assert front.desynchronized and "TLS" in front.reason


def test_protocol_32_backend_key_data_has_a_long_key() -> None:
    out = BackendDecoder().feed(b.backend_key_data(7, bytes(range(32))) + b.ready())
    assert out == [(m.B_BACKEND_KEY_DATA, b""), (m.B_READY_FOR_QUERY, b"I")]


def test_cancel_request_keeps_nothing() -> None:
    front = FrontendDecoder()
    out = front.feed(b.cancel_request(1234, b"secretkey-32-bytes-long-for-3.2!"))
    assert out == [(m.CANCEL_REQUEST, b"")]
    assert front.feed(b"anything after") == []
    assert not front.desynchronized and front.buffered == 0


def test_protocol_2_is_refused() -> None:
    front = FrontendDecoder()
    front.feed(struct.pack("!ii", 8, 2 << 16))
    assert front.desynchronized and "2.0" in front.reason


def test_length_below_four_desynchronizes() -> None:
    front = FrontendDecoder()
    front.feed(b.startup({"user": "u"}) + b"Q\x00\x00\x00\x02")
    assert front.desynchronized and "length 2" in front.reason
    assert front.feed(b.query("select 1")) == []


def test_unknown_type_desynchronizes() -> None:
    back = BackendDecoder()
    back.feed(b.auth(0) + b"\x01\x00\x00\x00\x04")
    assert back.desynchronized and "0x01" in back.reason


def test_absurd_lengths_desynchronize_without_allocating() -> None:
    tracemalloc.start()
    try:
        for decoder, header in [
            (BackendDecoder(), b"Z" + struct.pack("!I", 100 << 20)),  # small type, 100 MB
            (BackendDecoder(), b"D" + struct.pack("!I", 0xFFFFFFF0)),  # over 1 GiB
            (FrontendDecoder(), struct.pack("!ii", 0x7FFFFFF0, 196608)),  # startup
        ]:
            decoder.feed(header + b"x" * 100)
            assert decoder.desynchronized, header
            assert decoder.buffered == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_large_datarow_is_buffered_only_as_it_arrives() -> None:
    back = BackendDecoder()
    back.feed(b"D" + struct.pack("!I", 20 << 20))  # legitimate: rows may be big
    assert not back.desynchronized
    assert back.buffered == 5


def test_a_message_longer_than_a_capture_records_stops_recording_without_buffering() -> None:
    """Regression (issue 13, point 6): one 200 MB statement made the decoder peak near
    600 MB. Past RECORD_LIMIT the connection is no longer recorded (the proxy forwards it
    as ever) and nothing of the message is kept, however it streams in."""
    tracemalloc.start()
    try:
        for decoder, kind in ((FrontendDecoder(), b"Q"), (BackendDecoder(), b"D")):
            if isinstance(decoder, FrontendDecoder):
                decoder.feed(b.startup({"user": "u"}))
            length = 200 << 20
            decoder.feed(kind + struct.pack("!I", length))
            chunk = b"x" * (1 << 20)
            for _ in range(length >> 20):
                decoder.feed(chunk)
            assert decoder.desynchronized and "no longer recorded" in decoder.reason
            assert decoder.buffered == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_dropped_bodies_are_skipped_across_chunks() -> None:
    back = BackendDecoder(drop=frozenset({m.B_DATA_ROW}))
    row = b.data_row([b"x" * 1000])
    assert back.feed(row[:10]) == [(m.B_DATA_ROW, b"")]
    assert back.buffered == 0
    assert back.feed(row[10:] + b.ready()) == [(m.B_READY_FOR_QUERY, b"I")]


def test_buffer_boundaries_at_every_offset() -> None:
    """pgbouncer-style: cut the stream at each byte and check framing is unchanged."""
    whole = FrontendDecoder().feed(FRONTEND)
    for cut in range(len(FRONTEND) + 1):
        front = FrontendDecoder()
        assert front.feed(FRONTEND[:cut]) + front.feed(FRONTEND[cut:]) == whole, cut


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points:
        chunks.append(data[last:point])
        last = point
    chunks.append(data[last:])
    return chunks


def _feed_all(decoder: _Framer, chunks: list[bytes]) -> list[m.Message]:
    out: list[m.Message] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40))
def test_frontend_chunking_property(cuts: list[int]) -> None:
    expected = FrontendDecoder().feed(FRONTEND)
    assert _feed_all(FrontendDecoder(), _split(FRONTEND, cuts)) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40), st.booleans())
def test_backend_chunking_property(cuts: list[int], drop_rows: bool) -> None:
    drop = frozenset({m.B_DATA_ROW}) if drop_rows else frozenset()
    expected = BackendDecoder(drop=drop).feed(BACKEND)
    assert _feed_all(BackendDecoder(drop=drop), _split(BACKEND, cuts)) == expected


def test_byte_by_byte() -> None:
    for decoder_type, stream in [(FrontendDecoder, FRONTEND), (BackendDecoder, BACKEND)]:
        chunks = [stream[i : i + 1] for i in range(len(stream))]
        assert _feed_all(decoder_type(), chunks) == decoder_type().feed(stream)
