"""The project's URLs plus ``POST /bench/bare/`` (bench/webhook_settings.py).

The bare endpoint is what a webhook view is without its work: a DRF
``APIView`` with the same authentication (none) and permission (``AllowAny``)
as the webhook views, answering 200 with a small JSON body, without reading
the request body.  The webhook views add reading the body, verifying the
signature and storing the row.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class BareView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"received": True, "duplicate": False})


urlpatterns = [
    path("bench/bare/", BareView.as_view(), name="bench-bare"),
    path("", include("config.urls")),
]
