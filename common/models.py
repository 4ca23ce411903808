from __future__ import annotations

from django.conf import settings
from django.db import models


class TransitionLog(models.Model):
    """Append-only history of one state machine: one row per transition, per
    object or in bulk.  Concrete subclasses add the foreign key to their object."""

    from_status = models.CharField(max_length=50, blank=True)  # blank when the row was created
    to_status = models.CharField(max_length=50)
    source = models.CharField(max_length=64, help_text='What caused it: "admin", "task", "webhook:lob", ...')
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(db_index=True)

    class Meta:
        abstract = True
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} ({self.source})"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Transition history is append-only")
        super().save(*args, **kwargs)  # type: ignore[arg-type]
