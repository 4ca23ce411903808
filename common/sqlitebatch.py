"""SQLite tuned for a long run of batched writes: checkpoints in a thread of
their own, and a larger page cache, for the duration of the run.

**Checkpoints.** In WAL mode each commit appends the pages it changed to the
``-wal`` file, and once the WAL holds ``wal_autocheckpoint`` pages (1,000 by
default) the connection that commits copies them back into the database file
and syncs it, there and then: the *checkpoint*.  A processing run that writes
in batches (100k webhook reports: every batch touches pages all over the
report indexes, the pieces and the recipients) passed that bound on almost
every commit, so it spent most of its commit time checkpointing: 3.0 s of a
17 s run, against 0.7 s for the commits alone (bench/README.md, webhooks).

:func:`checkpoints_in_background` runs the checkpoints from a second
connection in a daemon thread instead, each time another connection has
committed (``PRAGMA data_version``), at most every ``interval_s``.  The work
is the same; it is done while this thread goes on (SQLite releases the
interpreter lock while it copies and syncs, so on a second core it costs this
thread little).  This is SQLite's own advice for writers that cannot wait on
a checkpoint ("Application-Initiated Checkpoints", sqlite.org/wal.html).  The
checkpoint is ``PASSIVE``: it never waits on, nor blocks, a reader or a
writer; what a reader still needs is copied at the next one.  An idle
database is left alone.

The connection's own bound is raised tenfold, not turned off: if the thread
cannot keep up, or dies, the connection checkpoints itself as before once the
WAL is ten times its usual size, so the WAL never grows without limit.

**Page cache.** :func:`larger_page_cache` raises the connection's page cache
(SQLite's default is 2 MiB) for the run: a batch inserts into indexes spread
over the whole file, and with 2 MiB most of those pages were read again from
the OS on every batch (15 % of the run).  Only this connection, only for the
run: in WAL mode a connection drops its cache whenever another one commits,
so a large cache on every web worker's connection would mostly hold memory.

**Durable commits.** :func:`durable_transaction` syncs one transaction's
commit to disk (``synchronous=FULL`` for it alone), for the writes a power
cut must not take back.

Each puts the connection back as it was when the block ends, even inside a
transaction that is being rolled back (through the driver's connection: Django
refuses statements there), so a kept connection (``CONN_MAX_AGE``) is as it
was.  Nothing happens on PostgreSQL or on an in-memory database.

Written here rather than taken from a library: a thread that runs one PRAGMA,
and two PRAGMAs put back; no maintained package offers them for Django's
SQLite backend.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction

logger = logging.getLogger(__name__)

# SQLite's PRAGMA synchronous level that syncs the WAL at every commit.
FULL = 2
# How often, at most, the thread checkpoints while writes go on.
INTERVAL_S = 0.1
# The connection's own bound while the thread runs: this many times its usual one.
BACKSTOP = 10
# The page cache for a run of batches (KiB).
RUN_CACHE_KIB = 64 * 1024


class Checkpointer:
    """A daemon thread that checkpoints the SQLite file at ``path`` (``PASSIVE``)
    whenever another connection has committed since its last complete
    checkpoint, at most every ``interval_s``."""

    def __init__(self, path: str, *, interval_s: float = INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0  # complete ones
        self.failures = 0  # could not run, or could not copy everything (a reader, a writer)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            logger.exception("could not open %s for background checkpoints", self.path)
            self.failures += 1
            return
        try:
            copied_up_to: Any = None  # data_version at the last complete checkpoint
            while not self._stop.wait(self.interval_s):
                try:
                    version = db.execute("PRAGMA data_version").fetchone()[0]
                    if version == copied_up_to:
                        continue  # nobody has committed since: nothing to copy
                    busy, in_log, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:  # locked for a moment: try again next time
                    self.failures += 1
                    continue
                if busy or copied < in_log:
                    self.failures += 1  # a reader still needs frames: copy the rest next time
                    continue
                self.checkpoints += 1
                copied_up_to = version
        finally:
            db.close()


def _driver_pragma(connection: Any, statement: str) -> None:
    """Run a PRAGMA on the driver's connection, if it is still open: also
    inside a transaction marked for rollback, where Django's cursor refuses."""
    if connection.connection is None:  # closed meanwhile: a new one starts with the defaults
        return
    try:
        connection.connection.execute(statement)
    except sqlite3.Error:
        logger.exception("could not run %s on %s", statement, connection.alias)


def _pragma(connection: Any, name: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


def _sqlite_file(using: str) -> Any:
    """The connection ``using`` when it is SQLite on a file, else None."""
    connection = connections[using]
    if connection.vendor != "sqlite" or not os.path.isfile(str(connection.settings_dict["NAME"])):
        return None
    return connection


@contextmanager
def checkpoints_in_background(using: str = "default") -> Iterator[Checkpointer | None]:
    """Checkpoint the database of connection ``using`` from a thread of its own
    for the duration of the block (SQLite files in WAL mode; otherwise, or
    inside another such block, a no-op that yields ``None``)."""
    connection = _sqlite_file(using)
    if connection is None or getattr(connection, "_background_checkpoints", False):
        yield None
        return
    bound = int(_pragma(connection, "wal_autocheckpoint"))
    if str(_pragma(connection, "journal_mode")).lower() != "wal" or bound <= 0:
        yield None  # no WAL, or checkpoints are someone else's business
        return
    checkpointer = Checkpointer(str(connection.settings_dict["NAME"]))
    connection._background_checkpoints = True
    try:
        _driver_pragma(connection, f"PRAGMA wal_autocheckpoint = {bound * BACKSTOP:d}")
        checkpointer.start()
        yield checkpointer
    finally:
        if checkpointer.running:
            checkpointer.stop()
        _driver_pragma(connection, f"PRAGMA wal_autocheckpoint = {bound:d}")
        connection._background_checkpoints = False


@contextmanager
def larger_page_cache(using: str = "default", kib: int = RUN_CACHE_KIB) -> Iterator[None]:
    """A page cache of up to ``kib`` KiB on connection ``using`` (SQLite on a
    file) for the duration of the block; memory is taken only as pages are read."""
    connection = _sqlite_file(using)
    if connection is None:
        yield
        return
    before = int(_pragma(connection, "cache_size"))
    if before < 0 and -before >= kib:  # already as large (an outer block, or the settings)
        yield
        return
    try:
        _driver_pragma(connection, f"PRAGMA cache_size = -{kib:d}")
        yield
    finally:
        _driver_pragma(connection, f"PRAGMA cache_size = {before:d}")


@contextmanager
def durable_transaction(using: str = "default") -> Iterator[None]:
    """One transaction (``atomic``) whose commit is on disk before the block
    returns, even on SQLite, whose connections run ``synchronous=NORMAL``
    (config/database.py): in WAL mode a NORMAL commit survives a crash of
    the process but not a power loss or an OS crash, which may take back the
    commits since the last checkpoint.  For the writes whose loss costs money
    (the mailing stage's keys and first-attempt times, saved before the
    printer is called: without them a printer with no idempotency keys would
    be sent the card again, not asked for it).  ``synchronous=FULL`` for this
    commit only: the WAL is synced, with every frame before it.

    PostgreSQL commits durably already (``synchronous_commit`` on).  Inside
    an outer transaction the outer commit is the one that counts (SQLite
    refuses to change the level there), so the block is a plain savepoint."""
    connection = connections[using]
    before = FULL
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        connection.ensure_connection()
        before = int(_pragma(connection, "synchronous"))
    try:
        if before < FULL:
            _driver_pragma(connection, f"PRAGMA synchronous = {FULL:d}")
        with transaction.atomic(using=using):
            yield
    finally:
        if before < FULL:
            _driver_pragma(connection, f"PRAGMA synchronous = {before:d}")
