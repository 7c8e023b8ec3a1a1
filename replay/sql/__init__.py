"""Facts about SQL text, from pglast, cached per text: query classes (fingerprints),
the commands the protocol cares about (DEALLOCATE, DISCARD ALL, COPY, COMMIT: see
:mod:`replay.sql.commands`), statement splitting, and keeping passwords out of
captured SQL.

Every stage that needs to know what a statement *is* asks here, so that each such
rule is written once. See docs/design.md, "Query classes".
"""
