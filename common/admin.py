"""Admin building blocks shared by the pipeline models."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import django_fsm as fsm
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import models
from django.http import HttpRequest
from django.utils.functional import cached_property
from django_fsm.admin import FSMAdminMixin

from common.fsm import Actor

logger = logging.getLogger(__name__)


class HistoryFSMAdminMixin(FSMAdminMixin):
    """django-fsm-2's transition buttons, routed through our service so the
    button path writes the same history row as every other path.

    ``fsm_service`` is the service that runs one transition (e.g.
    ``recipient_transition``); the mixin's own path would call the method and
    ``save()`` without a log row.
    """

    fsm_fields = ["status"]
    fsm_service: Callable[..., Any]
    fsm_service_object_kwarg: str
    # Buttons whose transition is only the first step of a larger service
    # (re-validation: move, check the data again, qualify) run that service,
    # never the bare transition, so a button can skip no check a bulk action makes.
    fsm_button_services: Mapping[str, Callable[[Any, Actor], Any]] = {}

    def _apply_fsm_transition(
        self,
        *,
        obj: Any,
        transition_name: str,
        request: HttpRequest,
        kwargs: Mapping[str, Any] | None = None,
    ) -> bool:
        # Only methods the FSM knows may run: never an arbitrary attribute.
        self._get_fsm_transition_func(obj=obj, transition_name=transition_name)
        label = transition_label(obj, transition_name)
        actor = Actor("admin", request.user)
        try:
            if transition_name in self.fsm_button_services:
                if not fsm.can_proceed(getattr(obj, transition_name)):
                    raise fsm.TransitionNotAllowed(transition_name)
                self.fsm_button_services[transition_name](obj, actor)
                obj.refresh_from_db()
            else:
                type(self).fsm_service(
                    **{self.fsm_service_object_kwarg: obj},
                    method=transition_name,
                    actor=actor,
                    reason="admin button",
                    **(kwargs or {}),
                )
        except fsm.TransitionNotAllowed:
            self.message_user(
                request, f"“{label}” is not allowed from {obj.get_status_display()}.", level=messages.ERROR
            )
            return False
        except fsm.ConcurrentTransition:
            self.message_user(
                request,
                "Someone else changed this object while you were looking at it: reload the page and try again.",
                level=messages.ERROR,
            )
            return False
        why = str(getattr(obj, "why", "") or "")
        self.message_user(
            request, f"{label}: now {obj.get_status_display()}." + (f" {why}." if why else ""), level=messages.SUCCESS
        )
        return True


def transition_label(obj: Any, transition_name: str) -> str:
    """The button's label (the transition's ``custom["label"]``), else its name in words."""
    meta = getattr(type(obj), transition_name)._django_fsm
    for t in meta.transitions.values():
        if t.custom.get("label"):
            return str(t.custom["label"])
    return transition_name.replace("_", " ").capitalize()


class CappedPaginator(Paginator):
    """Big tables: never COUNT(*) the whole table for the page links."""

    @cached_property
    def count(self) -> int:
        return min(super().count, 100_000)


class BigTableAdminMixin(admin.ModelAdmin):
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedPaginator
    list_per_page = 100

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # QuerySet.delete() would skip the history and the FSM: never offer it.
        actions.pop("delete_selected", None)
        return actions


class ReadOnlyHistoryInline(admin.TabularInline):
    fields = ("created", "from_status", "to_status", "source", "acting_user", "reason")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created", "-id")
    show_change_link = False
    verbose_name_plural = "Transition history (newest first)"

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        return super().get_queryset(request).select_related("acting_user")


class ReadOnlyHistoryAdmin(BigTableAdminMixin):
    """The append-only logs: viewable and searchable, never editable."""

    list_display: tuple[str, ...] = ("created", "from_status", "to_status", "source", "acting_user", "reason")
    list_filter = ("to_status", "source")
    list_select_related = ["acting_user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
