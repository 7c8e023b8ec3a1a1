"""Binary parameters are shown as their values, by type OID, not as base64 (issue 13, 7)."""

from __future__ import annotations

import struct
from pathlib import Path

from outcome_factory import error, ok, row, write_run

from replay.compare import classify
from replay.engine.session import _row
from replay.model.records import Statement, encode_param
from replay.report import write_reports
from replay.wire.values import params_as_text

INT4, TEXT, BOOL, TIMESTAMPTZ, JSONB = 23, 25, 16, 1184, 3802


def _binary(value: bytes) -> str:
    return encode_param(value, True) or ""


def test_binary_values_read_as_psql_prints_them() -> None:
    params = [
        _binary(struct.pack("!i", 42)),
        "plain text",
        _binary(b"\x01"),
        _binary(struct.pack("!q", 86_400 * 1_000_000)),  # a day after 2000-01-01
        _binary(b'\x01{"a": [1, 2]}'),
        _binary(b"\xde\xad"),  # type left to the server
        None,
    ]
    shown = params_as_text(
        params, [INT4, TEXT, BOOL, TIMESTAMPTZ, JSONB, 0, INT4], [1, 0, 1, 1, 1, 1, 1]
    )
    assert shown == [
        "42",
        "plain text",
        "t",
        "2000-01-02 00:00:00+00:00",
        '{"a": [1, 2]}',
        "\\xdead",
        None,
    ]


def test_bytes_that_are_not_the_declared_type_are_shown_in_hex() -> None:
    not_jsonb, not_utf8 = _binary(b"\x02{}"), _binary(b"\xff\xfe")
    assert params_as_text([not_jsonb, not_utf8], [JSONB, TEXT], [1]) == ["\\x027b7d", "\\xfffe"]


def test_the_engine_keeps_types_and_formats_only_for_binary_parameters() -> None:
    binary = Statement("s", 1, 0.0, "SELECT $1", protocol="extended",
                       params=[_binary(struct.pack("!i", 7))], param_types=[INT4],
                       param_formats=[1])  # fmt: skip
    text = Statement("s", 2, 0.0, "SELECT $1", protocol="extended", params=["7"],
                     param_types=[INT4], param_formats=[0])  # fmt: skip
    assert (_row(binary, "app").param_types, _row(binary, "app").param_formats) == ([INT4], [1])
    assert "param_formats" not in _row(text, "app").to_flat()


def test_reports_show_a_binary_parameter_as_its_value(tmp_path: Path) -> None:
    broken = row(
        "SELECT * FROM t WHERE id = $1", ok(), error(), params=[_binary(struct.pack("!i", 4242))]
    )
    broken.param_types, broken.param_formats = [INT4], [1]
    folder = write_run(tmp_path / "r", [broken])
    write_reports(folder, classify(folder))
    findings = (folder / "findings.json").read_text()
    assert '"params": ["4242"]' in findings.replace("\n", "").replace("  ", "")
    assert _binary(struct.pack("!i", 4242)) not in (folder / "report.html").read_text()
