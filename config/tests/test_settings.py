"""Settings come from the environment; production refuses to start half-configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from config.env import load_env

ROOT = Path(__file__).resolve().parents[2]
PROD_SECRET = "k3J9-vQ2x_Lm8ZpR4tW7yB1nC6dF0gH5sA-eU9iO2rT8wX4zV7qN3mK6jL1hG5fD"


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL", "Q_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_default_database_is_sqlite_with_wal_and_immediate_transactions(monkeypatch):
    assert settings.Q_CLUSTER["timeout"] < settings.Q_CLUSTER["retry"]
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("running on PostgreSQL")
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5
    assert "journal_mode=WAL" in options["init_command"]


def test_production_names_every_missing_variable(monkeypatch):
    monkeypatch.setenv("DJANGO_ENV", "production")
    for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ImproperlyConfigured, match=r"SECRET_KEY.*DATABASE_URL.*ALLOWED_HOSTS"):
        load_env()


def test_production_refuses_a_weak_secret_key(monkeypatch):
    monkeypatch.setenv("DJANGO_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "short")
    monkeypatch.setenv("DATABASE_URL", "postgres://x@127.0.0.1/x")
    monkeypatch.setenv("ALLOWED_HOSTS", "example.com")
    with pytest.raises(ImproperlyConfigured, match="at least 50"):
        load_env()


def test_bad_values_fail_with_the_variable_name(monkeypatch):
    monkeypatch.setenv("Q_WORKERS", "many")
    with pytest.raises(ImproperlyConfigured, match="Q_WORKERS"):
        load_env()


def test_queue_timeout_must_be_shorter_than_retry():
    result = run_manage("check", env={"Q_TIMEOUT_S": "600", "Q_RETRY_S": "60"})
    assert result.returncode != 0
    assert "must be shorter than retry" in result.stderr


def test_unknown_broker_is_refused():
    result = run_manage("check", env={"Q_BROKER": "carrier-pigeon"})
    assert result.returncode != 0
    assert "Q_BROKER" in result.stderr


def test_redis_broker_is_configured_from_env():
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.Q_CLUSTER.get('redis'))",
        env={"Q_BROKER": "redis://127.0.0.1:6379/3"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "redis://127.0.0.1:6379/3"


def test_missing_webhook_secret_is_a_check_error(settings):
    settings.PRINTERS_CONF = {**settings.PRINTERS_CONF, "lob": {**settings.PRINTERS_CONF["lob"], "webhook_secret": ""}}
    ids = [m.id for m in run_checks(include_deployment_checks=True)]
    assert "mailpieces.E001" in ids


def test_deploy_check_is_clean_with_production_settings():
    env = {
        "DJANGO_ENV": "production",
        "SECRET_KEY": PROD_SECRET,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "ALLOWED_HOSTS": "postcards.example.com",
        "LOB_WEBHOOK_SECRET": "a",
        "STANNP_WEBHOOK_SECRET": "b",
        "INTELLIPRINT_WEBHOOK_SECRET": "whsec_Yw==",
        "TAYLOR_WEBHOOK_SECRET": "c",
        "SANDBOX_WEBHOOK_SECRET": "d",
    }
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_check_flags_a_missing_webhook_secret():
    env = {
        "DJANGO_ENV": "production",
        "SECRET_KEY": PROD_SECRET,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "ALLOWED_HOSTS": "postcards.example.com",
    }
    result = run_manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "LOB_WEBHOOK_SECRET is not set" in result.stderr
