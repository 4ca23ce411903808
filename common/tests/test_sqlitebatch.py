"""``common.sqlitebatch``: SQLite WAL checkpoints from a thread of their own,
and a larger page cache, for a run of batched writes."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
from django.db import connection, connections, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper

from common.sqlitebatch import (
    BACKSTOP,
    RUN_CACHE_KIB,
    Checkpointer,
    checkpoints_in_background,
    durable_transaction,
    larger_page_cache,
)

ROW = b"x" * 3000  # about one page each


def _writer(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # only a checkpointer moves pages into the file
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    return db


def _write(db: sqlite3.Connection, rows: int, commits: int) -> None:
    for _ in range(commits):
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (body) VALUES (?)", [(ROW,)] * rows)
        db.execute("COMMIT")


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_without_a_checkpointer_the_pages_stay_in_the_wal(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    db = _writer(path)
    _write(db, rows=50, commits=4)
    # The control for the next test: 200 pages written, the file itself barely grew.
    assert os.path.getsize(path) < 50 * 4096
    assert os.path.getsize(path + "-wal") > 200 * 4096
    db.close()


def test_the_thread_copies_what_others_commit_and_leaves_an_idle_database_alone(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    db = _writer(path)
    checkpointer = Checkpointer(path, interval_s=0.01).start()
    try:
        _write(db, rows=50, commits=4)
        assert _wait_for(lambda: os.path.getsize(path) >= 200 * 4096), "the pages never reached the file"
        # The file grows while the checkpoint copies; it is counted once the
        # copy (and its sync) returns, a moment later on a loaded machine.
        assert _wait_for(lambda: checkpointer.checkpoints >= 1), "the copy was never counted"
        time.sleep(0.5)  # a tick that started before the last copy finishes (room for a loaded CI)
        # Idle: the WAL file keeps its size, but nothing new was committed, so
        # nothing is checkpointed again (a size test would fire every tick).
        settled = checkpointer.checkpoints
        time.sleep(0.3)
        assert checkpointer.checkpoints == settled
        _write(db, rows=5, commits=1)
        assert _wait_for(lambda: checkpointer.checkpoints == settled + 1), "a new commit was not copied"
    finally:
        checkpointer.stop()
        db.close()
    assert checkpointer.failures == 0
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone()[0] == 205


def test_a_file_it_cannot_open_counts_a_failure_and_ends_the_thread(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "no" / "such" / "dir" / "db.sqlite3"), interval_s=0.01).start()
    assert _wait_for(lambda: not checkpointer.running)
    assert checkpointer.failures == 1


def _sqlite_wrapper(name: str, alias: str) -> DatabaseWrapper:
    settings = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "TEST": {},
    }
    wrapper = DatabaseWrapper(settings, alias=alias)
    connections[alias] = wrapper
    return wrapper


@pytest.fixture
def file_db(tmp_path, django_db_blocker):
    """A Django connection to a SQLite file in WAL mode, as the default stack has."""
    with django_db_blocker.unblock():
        wrapper = _sqlite_wrapper(str(tmp_path / "app.sqlite3"), "walcheck")
        with wrapper.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        yield wrapper
        wrapper.close()
        del connections["walcheck"]


def _pragma(wrapper, name: str) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return int(cursor.fetchone()[0])


def test_inside_the_block_the_connection_checkpoints_only_as_a_backstop(file_db):
    assert _pragma(file_db, "wal_autocheckpoint") == 1000
    with checkpoints_in_background("walcheck") as checkpointer:
        assert checkpointer is not None
        # Not off: if the thread falls behind or dies, the connection still
        # checkpoints once the WAL is ten times its usual bound.
        assert _pragma(file_db, "wal_autocheckpoint") == 1000 * BACKSTOP
        with file_db.cursor() as cursor:
            cursor.executemany("INSERT INTO t (body) VALUES (%s)", [(ROW,)] * 300)
        assert _wait_for(lambda: checkpointer.checkpoints >= 1), "no checkpoint after a commit"
    assert _pragma(file_db, "wal_autocheckpoint") == 1000
    assert not checkpointer.running


def test_an_error_inside_still_stops_the_thread_and_restores_the_bound(file_db):
    with pytest.raises(ZeroDivisionError), checkpoints_in_background("walcheck") as checkpointer:
        1 / 0  # noqa: B018
    assert not checkpointer.running
    assert _pragma(file_db, "wal_autocheckpoint") == 1000


def test_a_transaction_being_rolled_back_still_gets_its_settings_back_and_keeps_its_error(file_db):
    """Django refuses statements in a transaction marked for rollback: putting
    the settings back must neither fail there nor hide the block's own error."""

    def fail_in_a_broken_transaction():
        with (
            transaction.atomic(using="walcheck"),
            checkpoints_in_background("walcheck"),
            larger_page_cache("walcheck"),
        ):
            transaction.set_rollback(True, using="walcheck")
            raise ValueError("the block's own error")

    with pytest.raises(ValueError, match="the block's own"):
        fail_in_a_broken_transaction()
    assert _pragma(file_db, "wal_autocheckpoint") == 1000
    assert _pragma(file_db, "cache_size") == -2000


def test_nested_blocks_start_one_thread(file_db):
    with checkpoints_in_background("walcheck") as outer:
        with checkpoints_in_background("walcheck") as inner:
            assert inner is None
        assert _pragma(file_db, "wal_autocheckpoint") == 1000 * BACKSTOP
    assert outer is not None
    assert _pragma(file_db, "wal_autocheckpoint") == 1000


def test_the_page_cache_is_larger_inside_and_as_it_was_after(file_db):
    assert _pragma(file_db, "cache_size") == -2000  # SQLite's default, 2 MiB
    with larger_page_cache("walcheck"):
        assert _pragma(file_db, "cache_size") == -RUN_CACHE_KIB
        with larger_page_cache("walcheck"):
            pass
        assert _pragma(file_db, "cache_size") == -RUN_CACHE_KIB
    assert _pragma(file_db, "cache_size") == -2000


def test_a_durable_transaction_commits_with_the_wal_synced_and_puts_the_level_back(file_db):
    """synchronous=FULL (2) for the block's commit, NORMAL (1) again after;
    its writes are one transaction, committed when the block ends."""
    seen: list[int] = []
    assert _pragma(file_db, "synchronous") == 1
    with durable_transaction("walcheck"):
        assert file_db.in_atomic_block
        with file_db.cursor() as cursor:
            cursor.execute("PRAGMA synchronous")
            seen.append(int(cursor.fetchone()[0]))
            cursor.executemany("INSERT INTO t (body) VALUES (%s)", [(ROW,)] * 3)
    assert seen == [2]
    assert _pragma(file_db, "synchronous") == 1
    with file_db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone()[0] == 3


def test_a_durable_transaction_that_fails_rolls_back_and_puts_the_level_back(file_db):
    def insert_then_fail() -> None:
        with durable_transaction("walcheck"), file_db.cursor() as cursor:
            cursor.execute("INSERT INTO t (body) VALUES (%s)", [ROW])
            raise ValueError("in the block")

    with pytest.raises(ValueError, match="in the block"):
        insert_then_fail()
    assert _pragma(file_db, "synchronous") == 1
    with file_db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone()[0] == 0


def test_inside_an_outer_transaction_a_durable_block_is_a_savepoint_of_it(file_db):
    """SQLite refuses to change the level inside a transaction: the outer
    commit is the one that counts, and the block neither fails nor commits."""
    with transaction.atomic(using="walcheck"):
        with durable_transaction("walcheck"), file_db.cursor() as cursor:
            cursor.execute("INSERT INTO t (body) VALUES (%s)", [ROW])
        assert file_db.in_atomic_block
        transaction.set_rollback(True, using="walcheck")
    with file_db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone()[0] == 0


def test_nothing_happens_on_an_in_memory_database(django_db_blocker):
    with django_db_blocker.unblock():
        wrapper = _sqlite_wrapper(":memory:", "walcheck_memory")
        try:
            with checkpoints_in_background("walcheck_memory") as checkpointer, larger_page_cache("walcheck_memory"):
                assert checkpointer is None
                assert _pragma(wrapper, "cache_size") == -2000
        finally:
            wrapper.close()
            del connections["walcheck_memory"]


@pytest.mark.django_db
def test_nothing_happens_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with checkpoints_in_background() as checkpointer, larger_page_cache():
        assert checkpointer is None
