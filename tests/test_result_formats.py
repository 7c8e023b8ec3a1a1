"""Per-column result formats on the libpq path (TLS targets): the same row digests as
the pipelined connection, which sends the captured Bind as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from capture_builder import INT4, SessionScript, int4, write_capture
from conftest import two_targets
from psycopg.conninfo import make_conninfo
from tls_front import TlsFront

from replay.capture.split import split_capture
from replay.engine import EngineOptions, replay
from replay.engine import formats as f
from replay.model.outcomes import OutcomeRow, iter_outcomes
from replay.targets.target import Target

SCHEMA = """
CREATE TABLE things (
    id int PRIMARY KEY, name text, price numeric(10, 2), ratio float8,
    seen timestamptz, tag uuid, flags int4[], ok bool
);
INSERT INTO things
SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'thing ' || i END, i * 1.25, i / 7.0,
       timestamptz '2024-02-29 12:34:56.789+01' + i * interval '1 hour 1 second',
       md5(i::text)::uuid, ARRAY[i, -i], i % 2 = 0
FROM generate_series(1, 40) i;
"""
COLUMNS = "id, name, price, ratio, seen, tag, flags, ok"


@pytest.fixture
def targets(pg_server) -> Iterator[list[Target]]:
    yield from two_targets(pg_server, SCHEMA)


def test_libpq_asks_one_format_and_converts_the_binary_columns() -> None:
    assert f.libpq_formats([]) == f.TEXT
    assert f.libpq_formats([1]) == f.BINARY
    assert f.libpq_formats([1, 1, 1]) == f.BINARY
    assert f.libpq_formats([0, 0]) == f.TEXT
    assert f.libpq_formats([0, 1, 0, 1]) == f.Formats(0, (1, 3))


def test_built_in_types_are_converted_others_stay_text() -> None:
    assert all(f.convertible(oid) for oid in (23, 25, 1700, 701, 1184, 2950, 1007, 16))
    assert not f.convertible(2249)  # an anonymous record has no text input
    assert not f.convertible(2287)  # nor an array of them
    assert not f.convertible(16385)  # an extension's type, an enum, a composite


def test_conversions_keep_row_order_within_the_parameter_limit(monkeypatch) -> None:
    monkeypatch.setattr(f, "MAX_PARAMS", 5)
    columns = [[b"1", b"2", None, b"4", b"5"], [b"a", b"b", b"c", None, b"e"]]
    queries = f.conversions(columns, [23, 25])
    assert [(q.first, q.rows) for q in queries] == [(0, 2), (2, 2), (4, 1)]
    assert queries[0].sql == b"VALUES ($1, $2), ($3, $4)"
    assert queries[0].values == [b"1", b"a", b"2", b"b"]
    assert queries[0].types == [23, 25, 23, 25]
    assert queries[1].values == [None, b"c", b"4", None]
    assert queries[2].sql == b"VALUES ($1, $2)"


def _rows(tmp_path: Path, targets: list[Target], script: SessionScript) -> dict[int, OutcomeRow]:
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    capture = write_capture(out / "capture", [script])
    (out / "split").mkdir()
    replay(split_capture(capture, out / "split"), targets, out / "report", EngineOptions(jobs=1))
    return {row.seq: row for row in iter_outcomes(out / "report")}


def mixed_formats() -> SessionScript:
    s = SessionScript("s")
    mixed = [1, 0, 1, 1, 1, 1, 1, 0]
    for i in range(1, 41, 3):
        s.extended(
            f"SELECT {COLUMNS} FROM things WHERE id = $1",
            [int4(i)],
            types=[INT4],
            formats=[1],
            result_formats=mixed,
        )
        s.extended(
            f"SELECT {COLUMNS} FROM things WHERE id <= $1 ORDER BY id",
            [b"%d" % i],
            types=[INT4],
            name="upto",
            result_formats=[0, 1, 0, 1, 0, 1, 0, 1],
        )
    s.simple("BEGIN", tx_status="T")
    s.extended(
        "UPDATE things SET ratio = ratio * 2 WHERE id % 4 = 0 RETURNING id, ratio, name",
        result_formats=[1, 1, 0],
        tx_status="T",
    )
    s.simple("COMMIT")
    # Many rows: more than one conversion query's worth of parameters.
    s.extended(
        "SELECT i, 'row ' || i FROM generate_series(1, 20000) i",
        result_formats=[1, 0],
        name="many",
    )
    # An anonymous record has no text input: it stays text, and the outcome says so.
    s.extended("SELECT id, ROW(id, name) FROM things ORDER BY id", result_formats=[0, 1])
    return s


def test_mixed_result_formats_digest_the_same_over_tls_as_pipelined(
    tmp_path, pg_server, targets
) -> None:
    plain = _rows(tmp_path, targets, mixed_formats())
    for target in targets:  # the UPDATE again from the same rows
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            conn.execute("DROP TABLE things")
            conn.execute(SCHEMA)
    front = TlsFront(pg_server.port, tmp_path)
    try:
        encrypted = [
            Target(t.name, make_conninfo(t.conninfo, port=front.port, sslmode="require"))
            for t in targets
        ]
        tls = _rows(tmp_path, encrypted, mixed_formats())
        assert front.tls_connections >= 2
    finally:
        front.close()
    assert plain.keys() == tls.keys() and len(tls) == 33
    record = max(tls)
    for seq, row in tls.items():
        for name, outcome in row.outcomes.items():
            pipelined = plain[seq].outcomes[name]
            assert outcome.status == pipelined.status == "ok", (seq, outcome.message)
            assert (outcome.rows, outcome.columns) == (pipelined.rows, pipelined.columns)
            if seq == record:
                assert outcome.message is not None and "columns 2 " in outcome.message
                continue
            assert outcome.message is None, (seq, outcome.message)
            assert outcome.digest == pipelined.digest, (seq, row.sql)
            assert outcome.digest_unordered == pipelined.digest_unordered
