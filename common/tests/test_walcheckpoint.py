"""``common.walcheckpoint``: SQLite WAL checkpoints from a thread of their own."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
from django.db import connection, connections
from django.db.backends.sqlite3.base import DatabaseWrapper

from common.walcheckpoint import Checkpointer, checkpoints_in_background

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


def _written_with_checkpointer(path: str, *, pages: int, rows: int, commits: int, settle) -> Checkpointer:
    """Write through a connection that never checkpoints, with a Checkpointer
    bounded at ``pages`` running; ``settle()`` runs before it is stopped."""
    db = _writer(path)
    checkpointer = Checkpointer(path, page_size=4096, pages=pages, interval_s=0.01).start()
    try:
        _write(db, rows=rows, commits=commits)
        settle()
    finally:
        checkpointer.stop()
        db.close()
    return checkpointer


def test_the_thread_checkpoints_once_the_wal_passes_its_bound(tmp_path):
    path = str(tmp_path / "db.sqlite3")

    def reached_the_file():
        assert _wait_for(lambda: os.path.getsize(path) > 150 * 4096), "the pages never reached the file"

    checkpointer = _written_with_checkpointer(path, pages=20, rows=50, commits=4, settle=reached_the_file)
    assert checkpointer.checkpoints >= 1
    assert checkpointer.failures == 0
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone()[0] == 200


def test_a_small_wal_is_left_alone(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    checkpointer = _written_with_checkpointer(path, pages=1000, rows=5, commits=2, settle=lambda: time.sleep(0.1))
    assert checkpointer.checkpoints == 0


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


def _bound(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        return int(cursor.fetchone()[0])


def test_the_connection_stops_checkpointing_inside_and_is_as_it_was_after(file_db):
    assert _bound(file_db) == 1000
    with checkpoints_in_background("walcheck") as checkpointer:
        assert checkpointer is not None
        assert _bound(file_db) == 0
        with file_db.cursor() as cursor:
            cursor.executemany("INSERT INTO t (body) VALUES (%s)", [(ROW,)] * 1200)
        assert _wait_for(lambda: checkpointer.checkpoints >= 1), "no checkpoint past 1,000 pages"
    assert _bound(file_db) == 1000
    assert not checkpointer._thread.is_alive()


def test_an_error_inside_still_stops_the_thread_and_restores_the_bound(file_db):
    with pytest.raises(ZeroDivisionError), checkpoints_in_background("walcheck") as checkpointer:
        1 / 0  # noqa: B018
    assert not checkpointer._thread.is_alive()
    assert _bound(file_db) == 1000


def test_nested_blocks_start_one_thread(file_db):
    with checkpoints_in_background("walcheck") as outer:
        with checkpoints_in_background("walcheck") as inner:
            assert inner is None
        assert _bound(file_db) == 0
    assert outer is not None
    assert _bound(file_db) == 1000


def test_nothing_happens_on_an_in_memory_database(django_db_blocker):
    with django_db_blocker.unblock():
        wrapper = _sqlite_wrapper(":memory:", "walcheck_memory")
        try:
            with checkpoints_in_background("walcheck_memory") as checkpointer:
                assert checkpointer is None
        finally:
            wrapper.close()
            del connections["walcheck_memory"]


@pytest.mark.django_db
def test_nothing_happens_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with checkpoints_in_background() as checkpointer:
        assert checkpointer is None
