"""Stage 2: the databases a replay writes to.

:mod:`~replay.targets.safety` decides which databases may be written to (never the
capture's source), :mod:`~replay.targets.server` starts a throwaway scratch server,
:mod:`~replay.targets.clone` makes the baseline and candidate clones,
:mod:`~replay.targets.migrate` applies the new migrations to the candidate, and
:mod:`~replay.targets.schema` snapshots and diffs their schemas. See docs/design.md,
"Stage 2: targets".
"""
