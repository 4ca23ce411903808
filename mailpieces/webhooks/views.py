"""The printers' webhook endpoints: ``POST /webhooks/<printer>/``.

Each view does one thing: hand the raw request body and headers to
:func:`mailpieces.webhooks.inbox.webhook_receive`, which verifies the vendor's
signature over those exact bytes and stores the delivery, and answer at once.
Nothing here parses the body: DRF's parsers are declared (for the schema) but
``request.data`` is never touched, so what is verified and stored is what the
printer signed, whatever its content type (Lob, IntelliPrint, Taylor and the
sandbox send JSON; Stannp JSON or a form).

Answers (docs/webhooks.md, "Endpoints"):

- 200 ``{"received": true, "duplicate": false}``: authentic and stored; a delivery
  already stored is a no-op answered the same way with ``"duplicate": true``.
  An authentic body we cannot read (a new event type, bad JSON) is still a 200:
  processing quarantines it; the sender must not retry it, or pause us.
- 401: not authentic (forged, tampered, stale, unsigned, a malformed signature
  header, or no secret configured: verification fails closed).  The reason is
  logged; the answer is generic and never echoes the body or a secret.
- 404: the printer is not enabled here (or not configured: no API key).
- 413: the body is larger than ``settings.WEBHOOK_MAX_BODY_BYTES`` (1 MiB by
  default), refused from ``Content-Length`` before anything is read.
- 503 with ``Retry-After``: the only deliberate 5xx, when the delivery could not
  be stored (the database is down or locked): the sender retries something we
  never kept.
- 405 for any method but POST.

No session authentication (so no CSRF), no throttling, no content negotiation:
a sender's odd ``Accept`` header never costs it a delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import UnreadablePostError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, FormParser, JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mailpieces.webhooks.inbox import webhook_receive
from printers.base import Printer, PrinterError, WebhookVerificationError
from printers.kinds import PrinterKind
from printers.registry import get_printer

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# How long a sender should wait before retrying a delivery we could not store.
RETRY_AFTER_S = 30

REJECTED = "webhook signature is missing, malformed, stale or does not match"
NOT_ENABLED = "this printer is not enabled here"
TOO_LARGE = "webhook body is too large"
UNREADABLE = "webhook body could not be read"
UNAVAILABLE = "webhook could not be stored; retry later"


def max_body_bytes() -> int:
    """``settings.WEBHOOK_MAX_BODY_BYTES`` (1 MiB when unset or not a positive integer)."""
    value = getattr(settings, "WEBHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
    try:
        cap = int(value)
    except (TypeError, ValueError):
        return DEFAULT_MAX_BODY_BYTES
    return cap if cap > 0 else DEFAULT_MAX_BODY_BYTES


def declared_length(meta: Mapping[str, Any]) -> int:
    """The request's ``Content-Length`` (0 when absent or not a number, as Django reads it)."""
    try:
        return max(int(meta.get("CONTENT_LENGTH") or 0), 0)
    except (TypeError, ValueError):
        return 0


class IgnoreAcceptHeader(BaseContentNegotiation):
    """Always JSON: a webhook sender's ``Accept`` header must never turn a
    delivery into a 406 (DRF's default negotiation would, before we store it)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


def _answer(code: int, detail: str, **headers: str) -> Response:
    response = Response({"detail": detail}, status=code)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class PrinterWebhookView(APIView):
    """``POST /webhooks/<printer_kind>/``: verify the raw body, store it, answer 200.

    Verification is :func:`webhook_receive`'s (the printer's ``verify_webhook``
    over ``request.body``), not a DRF authentication class: a delivery is
    authentic or not as a whole, and checking it twice would only add a window
    in which a timestamp could expire between the two checks.
    """

    printer_kind: ClassVar[str] = ""

    authentication_classes = ()  # signatures, not sessions: no CSRF either
    permission_classes = (AllowAny,)  # whoever signs with the printer's secret
    throttle_classes = ()  # a dropped webhook costs more than a busy one
    # Declared for the schema; never used: the view reads request.body, never request.data.
    parser_classes = (JSONParser, FormParser)
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = IgnoreAcceptHeader
    http_method_names = ("post",)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        kind = self.printer_kind
        try:
            printer: Printer = get_printer(kind)
        except PrinterError as exc:
            logger.warning("%s webhook refused: %s", kind, exc)
            return _answer(status.HTTP_404_NOT_FOUND, NOT_ENABLED)
        except Exception:  # a configuration that cannot be loaded: ours to fix, theirs to retry
            logger.exception("%s webhook: the printer could not be built", kind)
            return _answer(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE, Retry_After=str(RETRY_AFTER_S))

        raw = request._request  # Django's request: DRF's proxying of each attribute showed in profiles
        cap = max_body_bytes()
        if declared_length(raw.META) > cap:  # refused before a byte is read
            logger.warning("%s webhook refused: Content-Length over %d bytes", kind, cap)
            return _answer(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, TOO_LARGE)
        try:
            body: bytes = raw.body  # the raw bytes, read first: the signature covers these
        except RequestDataTooBig:  # over DATA_UPLOAD_MAX_MEMORY_SIZE
            logger.warning("%s webhook refused: body over DATA_UPLOAD_MAX_MEMORY_SIZE", kind)
            return _answer(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, TOO_LARGE)
        except (UnreadablePostError, OSError):  # the sender hung up mid-body
            logger.warning("%s webhook refused: the body could not be read", kind)
            return _answer(status.HTTP_400_BAD_REQUEST, UNREADABLE)
        if len(body) > cap:  # Content-Length is bounded above; this only guards odd servers
            return _answer(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, TOO_LARGE)

        try:
            received = webhook_receive(
                printer=printer,
                body=body,
                headers=raw.headers,
                content_type=str(raw.META.get("CONTENT_TYPE") or ""),
            )
        except WebhookVerificationError as exc:
            # The reason goes to the log (it may quote a header, never the secret); the answer stays generic.
            logger.warning("%s webhook rejected: %s", kind, exc)
            return _answer(
                status.HTTP_401_UNAUTHORIZED, REJECTED, WWW_Authenticate=f'Signature realm="{kind} webhooks"'
            )
        except Exception:
            logger.exception("%s webhook could not be stored; asking the sender to retry", kind)
            return _answer(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE, Retry_After=str(RETRY_AFTER_S))

        if not received.duplicate:
            logger.debug("%s webhook %s stored as inbox row %s", kind, received.event_id, received.inbox_id)
        return Response({"received": True, "duplicate": received.duplicate}, status=status.HTTP_200_OK)


# ---------------------------------------------------------------------------- schema

_Accepted = inline_serializer(
    "WebhookReceived",
    fields={
        "received": serializers.BooleanField(help_text="Always true: the delivery is stored."),
        "duplicate": serializers.BooleanField(help_text="True when this delivery was stored before (a no-op)."),
    },
)
_Problem = inline_serializer("WebhookProblem", fields={"detail": serializers.CharField()})

_RESPONSE_HEADERS = [
    OpenApiParameter(
        "WWW-Authenticate",
        OpenApiTypes.STR,
        location=OpenApiParameter.HEADER,
        response=[401],
        description='`Signature realm="<printer> webhooks"`.',
    ),
    OpenApiParameter(
        "Retry-After",
        OpenApiTypes.INT,
        location=OpenApiParameter.HEADER,
        response=[503],
        description="Seconds to wait before delivering again.",
    ),
]

_V = TypeVar("_V", bound=type[PrinterWebhookView])


def _header(name: str, description: str, *, required: bool = True) -> OpenApiParameter:
    return OpenApiParameter(
        name, OpenApiTypes.STR, location=OpenApiParameter.HEADER, required=required, description=description
    )


def _documented(label: str, signed_by: str, headers: Sequence[OpenApiParameter]) -> Callable[[_V], _V]:
    """The OpenAPI description of one printer's endpoint (``extend_schema`` on its ``post``)."""
    schema = extend_schema(
        operation_id=f"webhook_{label.lower()}_receive",
        summary=f"Receive {label} webhooks",
        description=(
            f"{signed_by} The raw body is verified and stored as it arrived, then processed "
            "asynchronously; any authentic body is accepted, readable or not. No session or API-key "
            "authentication: the signature is the credential."
        ),
        tags=["webhooks"],
        # No security requirement (drf-spectacular writes `security: [{}]` for AllowAny
        # with no authentication classes): the signature headers below authenticate.
        parameters=[*headers, *_RESPONSE_HEADERS],
        request={
            "application/json": OpenApiTypes.OBJECT,
            "application/x-www-form-urlencoded": OpenApiTypes.OBJECT,
        },
        responses={
            200: OpenApiResponse(_Accepted, description="Authentic and stored (or stored before: duplicate)."),
            400: OpenApiResponse(_Problem, description="The body could not be read."),
            401: OpenApiResponse(
                _Problem, description="Not authentic: forged, tampered, stale, unsigned, or no secret configured."
            ),
            404: OpenApiResponse(_Problem, description="This printer is not enabled."),
            413: OpenApiResponse(_Problem, description="The body is larger than WEBHOOK_MAX_BODY_BYTES."),
            503: OpenApiResponse(_Problem, description="The delivery could not be stored; retry after Retry-After."),
        },
    )
    return extend_schema_view(post=schema)


@_documented(
    "Lob",
    "Signed by Lob: hex HMAC-SHA256 of `Lob-Signature-Timestamp + '.' + body`, within the configured tolerance.",
    [
        _header("Lob-Signature", "Hex HMAC-SHA256 of the timestamp, '.', and the raw body."),
        _header("Lob-Signature-Timestamp", "Epoch seconds or milliseconds of the signature."),
    ],
)
class LobWebhookView(PrinterWebhookView):
    printer_kind = PrinterKind.LOB


@_documented(
    "Stannp",
    "Signed by Stannp: hex HMAC-SHA256 of the raw body (JSON or form-encoded), no timestamp; "
    "the delivery is identified by the SHA-256 of its body. The `test_url` validation call is accepted like any "
    "other delivery.",
    [
        _header("X-Stannp-Signature", "Hex HMAC-SHA256 of the raw body.", required=False),
        _header("X-Stannp-Sigature", "The same, under the misspelt name of Stannp's older docs.", required=False),
    ],
)
class StannpWebhookView(PrinterWebhookView):
    printer_kind = PrinterKind.STANNP


@_documented(
    "IntelliPrint",
    "Delivered by Svix: `svix-signature` holds base64 HMAC-SHA256 entries over `svix-id.svix-timestamp.body` "
    "(the `webhook-*` names are accepted too); `svix-id` identifies the delivery.",
    [
        _header("svix-id", "Svix message id, the same across retries.", required=False),
        _header("svix-timestamp", "Epoch seconds; must be within 5 minutes.", required=False),
        _header("svix-signature", "Space-separated `v1,<base64>` entries.", required=False),
    ],
)
class IntelliPrintWebhookView(PrinterWebhookView):
    printer_kind = PrinterKind.INTELLIPRINT


@_documented(
    "Taylor",
    "Signed as docs/printers/taylor.md defines: `X-Taylor-Signature: t=<epoch>,v1=<hex HMAC-SHA256 of 't.body'>`.",
    [_header("X-Taylor-Signature", "`t=<epoch seconds>,v1=<hex>[,v1=<hex>…]`.")],
)
class TaylorWebhookView(PrinterWebhookView):
    printer_kind = PrinterKind.TAYLOR


@_documented(
    "Sandbox",
    "Signed by the local simulator: `X-Postcards-Signature: t=<epoch>,v1=<hex HMAC-SHA256 of 't.body'>`.",
    [_header("X-Postcards-Signature", "`t=<epoch seconds>,v1=<hex>[,v1=<hex>…]`.")],
)
class SandboxWebhookView(PrinterWebhookView):
    printer_kind = PrinterKind.SANDBOX


WEBHOOK_VIEWS: dict[str, type[PrinterWebhookView]] = {
    str(view.printer_kind): view
    for view in (LobWebhookView, StannpWebhookView, IntelliPrintWebhookView, TaylorWebhookView, SandboxWebhookView)
}
