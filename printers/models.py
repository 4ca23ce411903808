"""The printers app's one table: the shared rate limiter's ring of start
times (``common.ratelimit``'s database backend)."""

from __future__ import annotations

from django.db import models


class RateLimitSlot(models.Model):
    """One of the last ``limit`` request start times of a limiter ``name``: a
    request may start when the oldest slot started more than the period ago."""

    name = models.CharField(max_length=100)
    slot = models.PositiveIntegerField()  # 0..limit-1
    started = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "slot"], name="ratelimit_unique_slot")]

    def __str__(self) -> str:
        return f"{self.name}[{self.slot}]"
