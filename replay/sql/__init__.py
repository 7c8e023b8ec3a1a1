"""Facts about SQL text, from pglast, cached per text: query classes (fingerprints),
statement splitting, and keeping passwords out of captured SQL.

Every stage that needs to know what a statement *is* asks here, so that each such
rule is written once. See docs/design.md, "Query classes".
"""
