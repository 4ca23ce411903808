"""The ``default`` database, from ``DATABASE_URL`` or the SQLite path.

SQLite gets the same settings however it is chosen (no ``DATABASE_URL``, or
``DATABASE_URL=sqlite:///path``): WAL so readers overlap the writer, IMMEDIATE
so a transaction takes the write lock up front and waits for the busy timeout
instead of failing with "database is locked" when it upgrades a read to a
write, and that busy timeout.  Without them concurrent writers (the queue's
workers, the race tests) fail at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url

from config.env import Env

SQLITE_ENGINE = "django.db.backends.sqlite3"
# Seconds a connection is reused by the thread that opened it, on either database.
CONN_MAX_AGE_S = 60
# Bytes per page of a SQLite file created from now on (an existing file keeps
# its own: SQLite fixes the size when it writes the first page).  4 KiB, set
# here rather than left to the SQLite build's default.  A webhook's commit
# writes each page it changes (the inbox row and its three index entries) to
# the WAL whole, so 16 KiB pages wrote four times the bytes per webhook: on a
# machine with slower write-back that cost the ingest path ~9 % of its rate
# and ~11 ms of p99, the two goals 4 KiB met there and 16 KiB missed; the
# batch apply is ~12 % slower at 4 KiB (docs/decisions.md, "SQLite files are
# created with 4 KiB pages again").
# Set before journal_mode, which writes the first page of a new file.
SQLITE_PAGE_SIZE = 4096


def _sqlite(name: str, *, busy_timeout_s: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "ENGINE": SQLITE_ENGINE,
        "NAME": name,
        # Kept between requests, as PostgreSQL's are: a new SQLite connection
        # per request (Django's default, 0) costs the open, the PRAGMAs and
        # Django's function registrations, which was a quarter of a webhook's
        # time under gunicorn (bench/README.md, "Ingest").
        "CONN_MAX_AGE": CONN_MAX_AGE_S,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": busy_timeout_s,
            "init_command": f"PRAGMA page_size={SQLITE_PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            # Options in the URL's query string (``?timeout=60``) win.
            **(options or {}),
        },
    }


def database_from_env(env: Env, base_dir: Path) -> dict[str, Any]:
    """``DATABASES["default"]`` for this environment."""
    if not env.DATABASE_URL:
        return _sqlite(str(base_dir / env.SQLITE_PATH), busy_timeout_s=env.SQLITE_BUSY_TIMEOUT_S)
    parsed: dict[str, Any] = dict(dj_database_url.parse(env.DATABASE_URL, conn_max_age=CONN_MAX_AGE_S))
    if parsed["ENGINE"] == SQLITE_ENGINE:
        return _sqlite(parsed["NAME"], busy_timeout_s=env.SQLITE_BUSY_TIMEOUT_S, options=parsed.get("OPTIONS"))
    return parsed
