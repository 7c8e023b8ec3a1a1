"""The data contracts every stage shares: what a capture holds, what a replay answered.

:mod:`~replay.model.records` are the capture's sessions and statements,
:mod:`~replay.model.outcomes` what each target answered to each statement, and
:mod:`~replay.model.selection` which part of a capture a command looks at. Each is
(de)serialization only: no I/O beyond the file it reads or writes, no policy.
See docs/design.md, "Data contracts".
"""
