"""SQLite WAL checkpoints in a thread of their own during a long run of writes.

In WAL mode each commit appends the pages it changed to the ``-wal`` file, and
once that file passes ``wal_autocheckpoint`` pages (1,000 by default) the
connection that commits copies them back into the database file and syncs it,
there and then: the *checkpoint*.  A processing run that writes in batches
(100k webhook reports: every batch touches pages all over the report indexes,
the pieces and the recipients) passes that bound on almost every commit, so
it spent most of its commit time checkpointing: 3.0 s of a 17 s run, against
0.7 s for the commits alone (bench/README.md, webhooks).

:func:`checkpoints_in_background` turns the automatic checkpoint off on this
thread's connection and runs them from a second connection in a daemon
thread instead, whenever the WAL has grown past the same bound.  The work is
the same; it is done while this thread goes on (SQLite releases the
interpreter lock while it copies and syncs, so on a second core it costs this
thread nothing).  This is SQLite's own advice for writers that cannot wait
on a checkpoint ("Application-Initiated Checkpoints", sqlite.org/wal.html).

The checkpoint is ``PASSIVE``: it never waits on, nor blocks, a reader or a
writer; pages a reader still needs wait for the next one.  When the block
ends the thread stops and the connection's own bound comes back, so a kept
connection (``CONN_MAX_AGE``) is as it was.  Nothing happens on PostgreSQL,
on an in-memory database (the tests'), or when the bound is already off.

Written here rather than taken from a library: it is a thread that runs one
PRAGMA, and no maintained package offers it for Django's SQLite backend.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

logger = logging.getLogger(__name__)

# Pages in the WAL before a checkpoint: SQLite's own default bound.
WAL_PAGES = 1000
# How often the thread looks at the WAL's size.
INTERVAL_S = 0.05


class Checkpointer:
    """A daemon thread that checkpoints the SQLite file at ``path`` whenever
    its WAL passes ``pages`` pages of ``page_size`` bytes."""

    def __init__(self, path: str, *, page_size: int, pages: int = WAL_PAGES, interval_s: float = INTERVAL_S) -> None:
        self.path = path
        self.wal = f"{path}-wal"
        # A WAL frame is the page and a 24-byte header.
        self.bound = pages * (page_size + 24)
        self.interval_s = interval_s
        self.checkpoints = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self.wal)
        except OSError:  # no WAL yet, or it was just removed
            return 0

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            logger.exception("could not open %s for background checkpoints", self.path)
            self.failures += 1
            return
        try:
            while not self._stop.wait(self.interval_s):
                if self._wal_size() <= self.bound:
                    continue
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:  # the database is busy or locked: try again next time
                    self.failures += 1
        finally:
            db.close()


@contextmanager
def checkpoints_in_background(using: str = "default") -> Iterator[Checkpointer | None]:
    """Checkpoint the database of connection ``using`` from a thread of its own
    for the duration of the block (SQLite files in WAL mode only; otherwise a
    no-op that yields ``None``)."""
    connection = connections[using]
    path = str(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or not os.path.isfile(path):  # in memory (the tests'), or not made yet
        yield None
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        mode = str(cursor.fetchone()[0]).lower()
        cursor.execute("PRAGMA wal_autocheckpoint")
        bound = int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_size")
        page_size = int(cursor.fetchone()[0])
    if mode != "wal" or bound <= 0:  # no WAL, or someone already checkpoints by hand
        yield None
        return
    checkpointer = Checkpointer(path, page_size=page_size, pages=bound)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint = 0")
    checkpointer.start()
    try:
        yield checkpointer
    finally:
        checkpointer.stop()
        if connection.connection is not None:  # closed meanwhile: a new one starts with the default
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA wal_autocheckpoint = {bound:d}")
