"""``replay demo``: the whole idea on a throwaway PostgreSQL, in one command.

The demo's application (``app/schema.sql``, ``app/workload.py``) and its new
migrations (``migrations/``) are plain files: open them, change them, run again.
"""
