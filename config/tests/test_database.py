"""SQLite gets WAL, IMMEDIATE, the busy timeout and the chosen page size (new files) however it is chosen."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.database import SQLITE_PAGE_SIZE, database_from_env
from config.env import Env
from config.tests.test_settings import run_manage

BASE = Path("/srv/app")


def env(**values: object) -> Env:
    # Explicit values win over whatever the test run's own environment holds.
    return Env(**{"DATABASE_URL": "", "SQLITE_PATH": "db.sqlite3", "SQLITE_BUSY_TIMEOUT_S": 20, **values})


def test_a_sqlite_url_gets_the_same_settings_as_the_default_path() -> None:
    default = database_from_env(env(SQLITE_PATH="data/app.sqlite3"), BASE)
    from_url = database_from_env(env(DATABASE_URL="sqlite:////srv/app/data/app.sqlite3"), BASE)
    assert default["NAME"] == from_url["NAME"] == "/srv/app/data/app.sqlite3"
    assert from_url == default
    options = from_url["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] == 20
    assert "journal_mode=WAL" in options["init_command"]


def test_sqlite_connections_are_kept_between_requests_as_postgres_ones_are() -> None:
    sqlite = database_from_env(env(), BASE)
    postgres = database_from_env(env(DATABASE_URL="postgres://postgres@127.0.0.1:5432/app"), BASE)
    assert sqlite["CONN_MAX_AGE"] == postgres["CONN_MAX_AGE"] == 60


def test_the_busy_timeout_setting_applies_to_a_sqlite_url() -> None:
    database = database_from_env(env(DATABASE_URL="sqlite:////tmp/x.sqlite3", SQLITE_BUSY_TIMEOUT_S=45), BASE)
    assert database["OPTIONS"]["timeout"] == 45


def test_options_in_the_url_win_and_keep_the_others() -> None:
    database = database_from_env(env(DATABASE_URL="sqlite:////tmp/x.sqlite3?timeout=60"), BASE)
    assert database["OPTIONS"]["timeout"] == 60
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_postgres_urls_are_left_as_parsed() -> None:
    database = database_from_env(env(DATABASE_URL="postgres://postgres@127.0.0.1:5432/app"), BASE)
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "app"
    assert "transaction_mode" not in database.get("OPTIONS", {})


def test_the_settings_module_applies_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])"
    result = run_manage("shell", "-c", code, env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip().splitlines()[-1]
    assert "'transaction_mode': 'IMMEDIATE'" in printed
    assert "journal_mode=WAL" in printed


@pytest.fixture
def open_sqlite(django_db_blocker: Any) -> Iterator[Callable[[Path], tuple[int, str]]]:
    """Open a file through Django with the project's SQLite settings, as the
    app does: its page size and journal mode (not the test database)."""
    with django_db_blocker.unblock():
        yield _page_size_and_journal


def _page_size_and_journal(path: Path) -> tuple[int, str]:
    from django.db.backends.sqlite3.base import DatabaseWrapper

    settings = {
        **database_from_env(env(DATABASE_URL=f"sqlite:///{path}"), BASE),
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "TEST": {},
    }
    wrapper = DatabaseWrapper(settings, alias="page-size-check")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)")
            cursor.execute("PRAGMA page_size")
            page_size = cursor.fetchone()[0]
            cursor.execute("PRAGMA journal_mode")
            return page_size, cursor.fetchone()[0]
    finally:
        wrapper.close()


def test_a_new_sqlite_file_gets_4_kib_pages_in_wal_mode(tmp_path: Path, open_sqlite: Any) -> None:
    assert open_sqlite(tmp_path / "new.sqlite3") == (SQLITE_PAGE_SIZE, "wal") == (4096, "wal")


def test_the_page_size_is_set_before_wal_writes_the_first_page(
    tmp_path: Path, open_sqlite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 KiB is also SQLite's usual default, which would hide a PRAGMA that
    # comes too late: another size shows whether it is taken up at all.
    monkeypatch.setattr("config.database.SQLITE_PAGE_SIZE", 8192)
    assert open_sqlite(tmp_path / "new.sqlite3") == (8192, "wal")


def test_an_existing_sqlite_file_keeps_its_page_size(tmp_path: Path, open_sqlite: Any) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("PRAGMA page_size = 16384")
    old.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    old.close()
    assert open_sqlite(path) == (16384, "wal")
