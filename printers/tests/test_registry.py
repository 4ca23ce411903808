from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import printers
from printers.base import Printer, PrinterError
from printers.kinds import PrinterKind
from printers.registry import PRINTERS, get_printer, get_printer_class
from printers.simulator import VENDORS, Simulator


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


# ---------------------------------------------------------------- one folder per printer
PRINTER_PARTS = ("__init__.py", "client.py", "approval.py", "status.py", "simulator.py", "fixtures", "tests")


@pytest.mark.parametrize("kind", sorted(PRINTERS))
def test_each_printer_is_one_folder_with_its_client_rules_table_simulator_and_tests(kind):
    folder = Path(printers.__file__).parent / kind
    assert sorted(part for part in PRINTER_PARTS if not (folder / part).exists()) == []
    assert PRINTERS[kind].startswith(f"printers.{kind}.")
    assert VENDORS[kind].startswith(f"printers.{kind}.simulator.")


def test_the_printer_and_simulator_registries_name_the_same_printers():
    assert set(VENDORS) == set(PRINTERS)


@pytest.mark.parametrize("kind", sorted(PRINTERS))
def test_the_folder_exports_the_registered_class_and_uses_its_own_status_table(kind):
    cls = get_printer_class(kind)
    package = importlib.import_module(f"printers.{kind}")
    status = importlib.import_module(f"printers.{kind}.status")
    assert getattr(package, cls.__name__) is cls
    assert cls.status_map is status.STATUS_MAP
    assert cls.approval_model.__module__ == f"printers.{kind}.approval"


def test_a_simulator_serves_only_the_vendors_it_is_given():
    # Nothing registers itself at import: the registry is dotted paths, loaded when a simulator is built.
    assert all(isinstance(path, str) for path in VENDORS.values())
    sim = Simulator(vendors=["sandbox"])
    try:
        assert set(sim.handlers) == {"sandbox"}
    finally:
        sim.stop()
