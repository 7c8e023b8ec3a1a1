"""The old application's traffic: what the URL shortener sends to PostgreSQL.

Each session is one owner using the service: look up their account, shorten a few
URLs, resolve codes (and count the click), preview a few older links, list their
recent links and their totals.
The queries are the old code's, as production runs it today; the migrations in
``../migrations`` are what the next release wants to apply underneath it.
"""

from __future__ import annotations

import threading

import psycopg

ACCOUNT = "SELECT id, email FROM owners WHERE id = %s"
SHORTEN = "INSERT INTO links (code, target_url, owner_id) VALUES (%s, %s, %s) RETURNING id"
RESOLVE = "SELECT target_url FROM links WHERE code = %s"
COUNT_CLICK = "UPDATE links SET clicks = clicks + 1 WHERE code = %s"
RECENT = "SELECT code, target_url, clicks FROM links WHERE owner_id = %s ORDER BY id DESC LIMIT 10"
TOTALS = "SELECT count(*), coalesce(sum(clicks), 0) FROM links WHERE owner_id = %s"
PREVIEW = "SELECT code, target_url FROM links WHERE id = %s"


def owner_session(url: str, owner: int, links: int) -> None:
    """One owner's visit. Errors are the application's to have: they are recorded."""
    with psycopg.connect(url, autocommit=True, application_name=f"shortener-{owner}") as conn:
        conn.execute(ACCOUNT, [owner])
        codes = [f"o{owner}l{i}" for i in range(links)]
        for i, code in enumerate(codes):
            conn.execute(SHORTEN, [code, f"https://example.org/{owner}/{i}", owner])
        for code in [*codes, f"seed{owner}", f"seed{owner + 8}"]:
            row = conn.execute(RESOLVE, [code]).fetchone()
            if row is not None:
                conn.execute(COUNT_CLICK, [code])
        for link in range(200 + 3 * owner, 203 + 3 * owner):  # others' older links
            conn.execute(PREVIEW, [link])
        conn.execute(RECENT, [owner])
        conn.execute(TOTALS, [owner])


def run(url: str, owners: int = 6, links: int = 5) -> None:
    """Several owners at once, each on their own connection."""
    errors: list[BaseException] = []

    def visit(owner: int) -> None:
        try:
            owner_session(url, owner, links)
        except BaseException as exc:  # reported by the caller, after every thread ended
            errors.append(exc)

    threads = [threading.Thread(target=visit, args=(o,)) for o in range(1, owners + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
