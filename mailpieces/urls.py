from __future__ import annotations

from django.urls import URLPattern

# Webhook endpoints (/webhooks/<printer>/) are added by the webhook issue.
urlpatterns: list[URLPattern] = []
