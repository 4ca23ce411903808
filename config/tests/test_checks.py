"""An enabled printer without a usable base URL stops start-up, naming the variable."""

from __future__ import annotations

from typing import Any

from config.checks import check_printer_base_urls
from config.tests.test_settings import run_manage


def conf(**printers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kind: {"webhook_secret": "s", **values} for kind, values in printers.items()}


def test_an_enabled_printer_with_an_empty_base_url_is_an_error(settings: Any) -> None:
    settings.PRINTERS_CONF = conf(
        taylor={"enabled": True, "base_url": ""}, lob={"enabled": True, "base_url": "https://api.lob.com/v1"}
    )
    errors = check_printer_base_urls()
    assert [e.id for e in errors] == ["config.E001"]
    assert "taylor" in errors[0].msg
    assert "TAYLOR_BASE_URL" in (errors[0].hint or "")


def test_a_disabled_printer_needs_no_base_url(settings: Any) -> None:
    settings.PRINTERS_CONF = conf(taylor={"enabled": False, "base_url": ""})
    assert check_printer_base_urls() == []


def test_blank_or_schemeless_base_urls_are_errors_too(settings: Any) -> None:
    settings.PRINTERS_CONF = conf(
        lob={"enabled": True, "base_url": "   "},
        stannp={"enabled": True, "base_url": "api-us1.stannp.com/v1"},
        sandbox={"enabled": True, "base_url": "http://127.0.0.1:8765/sandbox/v1"},
    )
    errors = check_printer_base_urls()
    assert sorted(e.hint.split()[1] for e in errors if e.hint) == ["LOB_BASE_URL", "STANNP_BASE_URL"]


def test_the_default_configuration_passes_the_check() -> None:
    result = run_manage("check", env={})
    assert result.returncode == 0, result.stdout + result.stderr


def test_start_up_stops_when_an_enabled_printer_has_no_base_url() -> None:
    result = run_manage("check", env={"ENABLED_PRINTERS": "sandbox,taylor", "TAYLOR_BASE_URL": ""})
    assert result.returncode != 0
    assert "config.E001" in result.stderr
    assert "Set TAYLOR_BASE_URL" in result.stderr
