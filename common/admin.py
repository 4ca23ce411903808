"""Admin building blocks shared by the pipeline models."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import django_fsm as fsm
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest, HttpResponseRedirect
from django_fsm.admin import FSMAdminMixin

from common.fsm import Actor
from common.paginator import EstimatedCountPaginator, page_number

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
    # The buttons offered, each with the check a user must pass to see and
    # press it (``common.permissions.can_retry``...).  ``None``: the FSM's own
    # rule (every transition not marked ``custom={"admin": False}``), for
    # users with the change permission.  A transition not offered here cannot
    # be posted either: the check runs again when the button is pressed.
    fsm_buttons: Mapping[str, Callable[[Any], bool]] | None = None

    def fsm_button_allowed(self, request: HttpRequest, obj: Any, transition_name: str) -> bool:
        """May ``request.user`` see and press ``transition_name`` on ``obj``?"""
        transition = self._get_fsm_transition_by_name(obj=obj, transition_name=transition_name)
        if not self.is_fsm_transition_visible(transition):
            return False
        if self.fsm_buttons is None:
            return bool(self.has_change_permission(request, obj))
        check = self.fsm_buttons.get(transition_name)
        return check is not None and bool(check(request.user))

    def get_fsm_label(self, transition: Any) -> str:
        return str(transition.custom.get("label") or transition.name.replace("_", " ").capitalize())

    def get_help_text(self, transition: Any) -> str:
        # The button's tooltip, always in words (django-fsm-2 would show "None").
        text = transition.custom.get("help_text")
        return str(text) if text else f"Moves it to {transition.target}, recorded in its history with your name."

    def _get_fsm_extra_context(self, *, request: HttpRequest, obj: Any) -> Any:
        if obj is None:
            return
        for block in super()._get_fsm_extra_context(request=request, obj=obj):
            block.available_transitions = [
                t for t in block.available_transitions if self.fsm_button_allowed(request, obj, t.name)
            ]
            if block.available_transitions:
                block.block_label = "Actions"
                yield block

    def response_change(self, request: HttpRequest, obj: Any) -> Any:
        name = request.POST.get(self.fsm_post_param)
        if name:
            try:
                self._get_fsm_transition_func(obj=obj, transition_name=name)
            except (AttributeError, TypeError, ValueError):
                # A forged or outdated button: a message, never a 500.
                self.message_user(request, f"There is no action “{name}” here.", level=messages.ERROR)
                return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

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
        if not self.fsm_button_allowed(request, obj, transition_name):
            self.message_user(request, f"“{label}” is not yours to run here.", level=messages.ERROR)
            return False
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
            self.message_user(request, f"“{label}” is not allowed from {self.status_label(obj)}.", level=messages.ERROR)
            return False
        except fsm.ConcurrentTransition:
            self.message_user(
                request,
                "Someone else changed this object while you were looking at it: reload the page and try again.",
                level=messages.ERROR,
            )
            return False
        why = self.why_label(obj)
        self.message_user(
            request, f"{label}: now {self.status_label(obj)}." + (f" {why}." if why else ""), level=messages.SUCCESS
        )
        return True

    def status_label(self, obj: Any) -> str:
        """The object's status as a person reads it (an admin with its own words overrides this)."""
        return str(obj.get_status_display())

    def why_label(self, obj: Any) -> str:
        """Why the object is where it is, in words, or ""."""
        return str(getattr(obj, "why", "") or "")


def transition_label(obj: Any, transition_name: str) -> str:
    """The button's label (the transition's ``custom["label"]``), else its name in words."""
    meta = getattr(type(obj), transition_name)._django_fsm
    for t in meta.transitions.values():
        if t.custom.get("label"):
            return str(t.custom["label"])
    return transition_name.replace("_", " ").capitalize()


class BigTableAdminMixin(admin.ModelAdmin):
    # No COUNT(*) of the whole table on a page view (common/paginator.py).
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 100

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: Any,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Any:
        return self.paginator(
            queryset, per_page, orphans, allow_empty_first_page, page_number=page_number(request.GET.get("p"))
        )

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


class ToStatusFilter(admin.SimpleListFilter):
    """The statuses of the logged machine, from its ``Status`` choices: a
    field filter would read every history row for its ``DISTINCT`` values."""

    title = "to status"
    parameter_name = "to_status__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        for field in model_admin.model._meta.fields:
            status = getattr(field.related_model, "Status", None) if field.is_relation else None
            if status is not None:
                return [(str(value), str(value)) for value in status.values]
        return []

    def queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        return queryset.filter(to_status=self.value()) if self.value() else queryset


class SourceFilter(admin.SimpleListFilter):
    """What caused the move, by kind ("task" is every "task:…" source)."""

    title = "source"
    parameter_name = "source_kind"
    KINDS = (
        ("admin", "the admin"),
        ("task", "a task"),
        ("pipeline", "the pipeline"),
        ("command", "a command"),
        ("webhook", "a printer's webhook"),
    )

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return self.KINDS

    def queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        kind = self.value()
        if not kind:
            return queryset
        return queryset.filter(models.Q(source=kind) | models.Q(source__startswith=f"{kind}:"))


class ReadOnlyHistoryAdmin(BigTableAdminMixin):
    """The append-only logs: viewable and searchable, never editable."""

    list_display: tuple[str, ...] = ("created", "from_status", "to_status", "source", "acting_user", "reason")
    list_filter = (ToStatusFilter, SourceFilter)
    list_select_related = ["acting_user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
