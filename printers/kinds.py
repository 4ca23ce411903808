from __future__ import annotations

from django.db import models


class PrinterKind(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox (local simulator)"
    LOB = "lob", "Lob"
    STANNP = "stannp", "Stannp"
    INTELLIPRINT = "intelliprint", "IntelliPrint"
    TAYLOR = "taylor", "Taylor"
