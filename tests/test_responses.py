"""The pipelined connection's reader of answers: pure, fed with server byte streams."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given
from hypothesis import strategies as st

from replay.engine import encode
from replay.engine.responses import AnswerReader, Request
from replay.engine.result import keep_samples_where_rows_differ
from replay.model.outcomes import TargetOutcome
from replay.model.records import Statement
from replay.wire import build as b
from replay.wire.digest import RowDigest

INT4, TEXT = 23, 25


def two_answers() -> bytes:
    """A SELECT of two rows, then an error with a notice and a ParameterStatus around it."""
    return b"".join(
        [
            b.row_description([("id", INT4), ("name", TEXT)]),
            b.data_row([b"1", b"apple"]),
            b.data_row([b"2", None]),
            b.command_complete("SELECT 2"),
            b.ready("T"),
            b.notice("careful"),
            b.error("42703", 'column "qty" does not exist'),
            b.parameter_status("TimeZone", "UTC"),
            b.ready("E"),
        ]
    )


def reader_with(requests: int, now: float = 1.0) -> AnswerReader:
    reader = AnswerReader()
    for _ in range(requests):
        reader.add(Request(b""), now)
    return reader


def test_answers_come_out_in_order_with_outcomes_and_transaction_status() -> None:
    reader = reader_with(2)
    answers = reader.feed(two_answers(), 2.0)
    assert [a.tx_status for a in answers] == ["T", "E"]
    first, second = answers[0].outcomes, answers[1].outcomes
    assert len(first) == 1 and len(second) == 1
    digest = RowDigest()
    digest.add_values([b"1", b"apple"])
    digest.add_values([b"2", None])
    assert first[0].status == "ok" and first[0].tag == "SELECT 2" and first[0].rows == 2
    assert json.loads(first[0].columns) == [["id", INT4], ["name", TEXT]]
    assert first[0].digest == digest.ordered
    assert first[0].digest_unordered == digest.unordered
    # The sample is made text only where the targets' rows differ.
    other = TargetOutcome(status="ok", digest="another")
    keep_samples_where_rows_differ({"baseline": first[0], "candidate": other})
    assert first[0].sample == [["1", "apple"], ["2", None]]
    assert first[0].raw_sample is None
    assert (second[0].status, second[0].sqlstate) == ("error", "42703")
    assert not reader.pending


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_the_same_answers_however_the_bytes_arrive(cuts: list[int]) -> None:
    stream = two_answers()
    whole = reader_with(2).feed(stream, 2.0)
    reader = reader_with(2)
    pieces, start = [], 0
    for cut in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        pieces.append(stream[start:cut])
        start = cut
    answers = [a for piece in pieces for a in reader.feed(piece, 2.0)]
    assert [(a.tx_status, a.outcomes) for a in answers] == [
        (a.tx_status, a.outcomes) for a in whole
    ]


def test_only_a_request_alone_in_flight_gets_a_duration() -> None:
    alone = reader_with(1, now=1.0)
    [answer] = alone.feed(b.command_complete("SET") + b.ready("I"), 1.25)
    assert answer.outcomes[0].duration == 0.25
    crowded = reader_with(2, now=1.0)
    answers = crowded.feed(
        b.command_complete("SET") + b.ready("I") + b.command_complete("SET") + b.ready("I"), 1.5
    )
    assert [a.outcomes[0].duration for a in answers] == [None, None]


def test_a_multi_statement_query_gives_one_outcome_per_result() -> None:
    reader = reader_with(1)
    stream = (
        b.command_complete("UPDATE 2")
        + b.empty_query()
        + b.error("22012", "division by zero")
        + b.ready("I")
    )
    [answer] = reader.feed(stream, 2.0)
    assert [(o.status, o.tag, o.sqlstate) for o in answer.outcomes] == [
        ("ok", "UPDATE 2", None),
        ("ok", "", None),
        ("error", None, "22012"),
    ]
    assert answer.outcomes[0].rows == 2


def test_timeouts_fatal_errors_and_copy() -> None:
    reader = reader_with(1)
    [answer] = reader.feed(b.error("57014", "canceling statement") + b.ready("I"), 2.0)
    assert answer.outcomes[0].status == "timeout"
    # A FATAL error ends the connection: no answer, the connection reports the loss.
    reader = reader_with(1)
    assert reader.feed(b.error("57P01", "terminating connection", "FATAL"), 2.0) == []
    assert reader.fatal == "terminating connection"
    # COPY FROM STDIN asks for its data; COPY TO STDOUT digests the data rows.
    reader = reader_with(2)
    assert reader.feed(b.copy_in_response(), 2.0) == []
    assert reader.copy_wanted is reader.pending[0]
    copied = b.copy_out_response() + b.message(b"d", b"1\tx\n") + b.message(b"c")
    answers = reader.feed(
        b.command_complete("COPY 0")
        + b.ready("I")
        + copied
        + b.command_complete("COPY 1")
        + b.ready("I"),
        2.0,
    )
    digest = RowDigest()
    digest.add_datarow(b"1\tx\n")
    assert [(a.outcomes[0].tag, a.outcomes[0].rows) for a in answers] == [
        ("COPY 0", 0),
        ("COPY 1", 1),
    ]
    assert answers[1].outcomes[0].digest == digest.ordered


def test_requests_are_the_messages_libpq_would_send() -> None:
    simple = Statement(session="s", seq=1, start=0.0, sql="SELECT 1")
    assert encode.request(simple, {}).data == b.query("SELECT 1")
    extended = Statement(
        session="s",
        seq=2,
        start=0.0,
        sql="SELECT $1 + $2",
        protocol="extended",
        params=["2", "3"],
        param_types=[INT4, INT4],
        result_formats=[1],
    )
    sent = encode.request(extended, {})
    assert sent.data == (
        b.parse("SELECT $1 + $2", types=[INT4, INT4])
        + b.bind([b"2", b"3"], formats=[0, 0], result_formats=[1])
        + b.describe("P")
        + b.execute()
        + b.sync()
    )
    assert not sent.exclusive
    named = dataclasses.replace(extended, statement_name="q")
    prepared: dict[str, tuple[str, tuple[int, ...]]] = {}
    first = encode.request(named, prepared)
    assert first.exclusive and first.prepares == ("q", ("SELECT $1 + $2", (INT4, INT4)))
    assert first.data.startswith(b.close("S", "q") + b.parse("SELECT $1 + $2", "q", [INT4, INT4]))
    prepared["q"] = first.prepares[1]  # type: ignore[index,assignment]
    again = encode.request(named, prepared)
    assert not again.exclusive and again.data.startswith(
        b.bind([b"2", b"3"], statement="q", formats=[0, 0], result_formats=[1])
    )
    copy = Statement(session="s", seq=3, start=0.0, sql="COPY items FROM STDIN")
    assert encode.request(copy, {}).exclusive
