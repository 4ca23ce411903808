"""Routes of the mailpieces app, included at the site root by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, path

from mailpieces.webhooks.views import WEBHOOK_VIEWS

# POST /webhooks/<printer>/ for every printer kind (URL names "webhook-<kind>"):
# mailpieces/webhooks/views.py, docs/webhooks.md "Endpoints".
urlpatterns: list[URLPattern] = [
    path(f"webhooks/{kind}/", view.as_view(), name=f"webhook-{kind}") for kind, view in WEBHOOK_VIEWS.items()
]
