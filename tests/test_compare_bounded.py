"""Classification in bounded memory: chunked reading, sketches, and a long synthetic run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from outcome_factory import write_run

from replay.compare import classify
from replay.compare.sketch import RELATIVE_ERROR, DistinctCounter, QuantileSketch


@pytest.mark.parametrize("chunk_rows", [1, 2, 5])
def test_chunks_give_the_findings_of_the_whole_file(tmp_path: Path, chunk_rows: int) -> None:
    # Cascades whose first failure is in an earlier chunk, examples and sessions spread
    # over chunks: the same findings as reading the run in one piece.
    folder = write_run(tmp_path / "run")
    assert classify(folder, chunk_rows=chunk_rows).dumps() == classify(folder).dumps()


def test_quantile_sketch_is_pandas_while_exact_then_within_its_error() -> None:
    values = np.random.default_rng(7).lognormal(mean=-7, sigma=1.5, size=50_000)
    values[::100] = 0.0
    exact = QuantileSketch(exact_limit=len(values))
    bounded = QuantileSketch(exact_limit=1000)
    for part in np.array_split(values, 37):
        exact.add(part)
        bounded.add(part)
    series = pd.Series(values)
    assert exact.exact and exact.median() == series.median()
    assert exact.quantile(0.95) == series.quantile(0.95)
    assert not bounded.exact and bounded.count == len(values)
    ordered = np.sort(values)
    for q in (0.01, 0.5, 0.95, 0.99):
        nearest = ordered[round(q * (len(values) - 1))]
        assert abs(bounded.quantile(q) - nearest) <= RELATIVE_ERROR * nearest + 1e-12
    assert np.isnan(QuantileSketch().median())


def test_distinct_counter_is_exact_then_estimates() -> None:
    small = DistinctCounter(limit=100)
    small.add([f"s{i % 60}" for i in range(500)])
    assert small.count() == 60 and not small.saturated
    large = DistinctCounter(limit=4096)
    for start in range(0, 50_000, 10_000):
        large.add([f"session-{i}" for i in range(start, start + 10_000)])
    assert large.saturated
    assert abs(large.count() - 50_000) <= 0.05 * 50_000


# Writes a run of N statements in four classes (one fails, one is slower), classifies it
# in 5,000-line chunks, prints the findings' gist and the process's peak RSS.
_CHILD = r"""
import json, resource, sys
from pathlib import Path
from replay.compare import classify

folder, n = Path(sys.argv[1]), int(sys.argv[2])
folder.mkdir(parents=True)
with (folder / "outcomes.jsonl").open("w") as out:
    for i in range(n):
        d = 0.0001 * (1 + i % 97)
        if i % 4 == 3:
            cand = '"candidate_status":"error","candidate_sqlstate":"42703"'
        else:
            slow = 3 if i % 4 == 2 else 1
            cand = f'"candidate_status":"ok","candidate_rows":1,"candidate_duration":{d * slow:.6f}'
        out.write(
            f'{{"session":"s{i % 50}","seq":{i},"start":{1767225600 + i / 1000:.3f},'
            f'"fingerprint":"fp{i % 4}","sql":"SELECT {i % 4}","params":["{i}"],'
            f'"application_name":"shop","baseline_status":"ok","baseline_rows":1,'
            f'"baseline_duration":{d:.6f},{cand}}}\n'
        )
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
findings = classify(folder, chunk_rows=5000)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "before_kb": before, "peak_kb": peak, "size": (folder / "outcomes.jsonl").stat().st_size,
    "classes": {c.fingerprint: [str(c.verdict), c.count, c.sessions, c.latency.baseline_median]
                for c in findings.classes},
}))
"""


def _classify_in_child(folder: Path, statements: int) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(statements)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_memory_is_flat_in_the_length_of_the_run(tmp_path: Path) -> None:
    short = _classify_in_child(tmp_path / "short", 100_000)
    long = _classify_in_child(tmp_path / "long", 300_000)
    # Every figure of the classes but the latency (estimated past 2,048 timings) is exact.
    median = 0.0001 * 49  # of 0.0001 * (1..97), evenly spread
    for result, per_class in ((short, 25_000), (long, 75_000)):
        classes = result["classes"]
        assert isinstance(classes, dict)
        assert {fp: c[:3] for fp, c in classes.items()} == {
            "fp3": ["fails", per_class, 25],
            "fp2": ["slower", per_class, 25],
            "fp0": ["ok", per_class, 25],
            "fp1": ["ok", per_class, 25],
        }
        assert abs(classes["fp0"][3] - median) <= RELATIVE_ERROR * median + 1e-6
    grew_kb = int(long["peak_kb"]) - int(short["peak_kb"])  # type: ignore[call-overload]
    used_kb = int(long["peak_kb"]) - int(long["before_kb"])  # type: ignore[call-overload]
    # Classifying the long run as one DataFrame took 944 MB above the imports, twelve
    # times the file's 80 MB; by chunks it takes about 40 MB, for either run.
    assert used_kb * 1024 < int(long["size"])  # type: ignore[call-overload]
    assert grew_kb < 20 * 1024, f"peak RSS grew by {grew_kb} kB for a 3x longer run"
