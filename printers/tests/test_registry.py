from __future__ import annotations

import pytest

from printers.base import Printer, PrinterError
from printers.kinds import PrinterKind
from printers.registry import PRINTERS, get_printer, get_printer_class


def test_it_registers_every_printer_kind():
    assert set(PRINTERS) == set(PrinterKind.values)


@pytest.mark.parametrize("kind", sorted(PRINTERS))
def test_it_returns_classes_without_needing_settings(kind):
    cls = get_printer_class(kind)
    assert issubclass(cls, Printer)
    assert cls.kind == kind
    assert cls.countries


def test_it_rejects_an_unknown_kind_permanently():
    with pytest.raises(PrinterError, match="unknown printer kind 'fedex'") as info:
        get_printer_class("fedex")
    assert info.value.permanent


def test_it_builds_a_configured_printer(settings):
    settings.PRINTERS_CONF = {"lob": {"enabled": True, "api_key": "test_k", "base_url": "http://127.0.0.1:1/v1"}}
    printer = get_printer("lob")
    assert printer.kind == "lob"
    assert getattr(printer, "base_url", None) == "http://127.0.0.1:1/v1"


def test_it_refuses_a_disabled_printer(settings):
    settings.PRINTERS_CONF = {"lob": {"enabled": False, "api_key": "test_k"}}
    with pytest.raises(PrinterError, match="disabled") as info:
        get_printer("lob")
    assert info.value.permanent


def test_it_refuses_a_vendor_without_an_api_key(settings):
    settings.PRINTERS_CONF = {"lob": {"enabled": True, "api_key": ""}}
    with pytest.raises(PrinterError, match="LOB_API_KEY") as info:
        get_printer("lob")
    assert info.value.permanent


def test_it_builds_the_sandbox_without_an_api_key(settings):
    settings.PRINTERS_CONF = {"sandbox": {"enabled": True, "base_url": "http://127.0.0.1:1/sandbox/v1"}}
    assert get_printer("sandbox").kind == "sandbox"
