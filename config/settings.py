"""Django settings: one module, driven by the environment (see config/env.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from common.ratelimit import printer_limits
from config.database import database_from_env
from config.env import DEV_SECRET_KEY, load_env

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = load_env()

# ---------------------------------------------------------------------------- CORE
SECRET_KEY = ENV.SECRET_KEY or DEV_SECRET_KEY
DEBUG = ENV.DEBUG if ENV.DEBUG is not None else ENV.DJANGO_ENV == "development"
PUBLIC_BASE_URL = ENV.PUBLIC_BASE_URL
ALLOWED_HOSTS = [h.strip() for h in ENV.ALLOWED_HOSTS.split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in ENV.CSRF_TRUSTED_ORIGINS.split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_fsm",
    "django_q",
    "campaigns",
    "mailpieces",
    "printers",
    "config.apps.ProjectConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------- DATABASE
# PostgreSQL from DATABASE_URL in production; SQLite otherwise, with the same
# options (WAL, IMMEDIATE, busy timeout) whether or not it comes from a URL.
DATABASES: dict[str, Any] = {"default": database_from_env(ENV, BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------- QUEUE
# django-q2.  The database is the source of truth and the queue a doorbell;
# still, a task must not be redelivered while it runs: retry > timeout.
Q_CLUSTER: dict[str, Any] = {
    "name": "postcards",
    "workers": ENV.Q_WORKERS,
    "timeout": ENV.Q_TIMEOUT_S,
    "retry": ENV.Q_RETRY_S,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue",
}
if ENV.Q_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
elif ENV.Q_BROKER.startswith(("redis://", "rediss://")):
    Q_CLUSTER["redis"] = ENV.Q_BROKER
elif ENV.Q_BROKER == "sqs":
    Q_CLUSTER["sqs"] = {}  # boto3 reads AWS credentials from its own environment
else:
    raise ImproperlyConfigured(f"Q_BROKER must be 'orm', 'sqs' or a redis:// URL, not {ENV.Q_BROKER!r}")
if not Q_CLUSTER["timeout"] < Q_CLUSTER["retry"]:
    raise ImproperlyConfigured(
        f"django-q2 timeout ({Q_CLUSTER['timeout']}s) must be shorter than retry ({Q_CLUSTER['retry']}s), "
        "or a running task is handed to a second worker"
    )

# ---------------------------------------------------------------------------- API
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {"TITLE": "Postcards backend", "VERSION": "0.1.0", "SERVE_INCLUDE_SCHEMA": False}

# ---------------------------------------------------------------------------- PRINTERS
# One dict per printer kind; printer modules read only their own entry.
ENABLED_PRINTERS = frozenset(p.strip() for p in ENV.ENABLED_PRINTERS.split(",") if p.strip())
PRINTER_TIMEOUT_S = ENV.PRINTER_TIMEOUT_S
PRINTERS_CONF: dict[str, dict[str, Any]] = {
    "sandbox": {
        "base_url": ENV.SANDBOX_BASE_URL,
        "webhook_secret": ENV.SANDBOX_WEBHOOK_SECRET or ("" if ENV.production else "sandbox-dev-secret"),
    },
    "lob": {
        "api_key": ENV.LOB_API_KEY,
        "base_url": ENV.LOB_BASE_URL,
        "webhook_secret": ENV.LOB_WEBHOOK_SECRET,
        "webhook_tolerance_s": ENV.LOB_WEBHOOK_TOLERANCE_S,
    },
    "stannp": {
        "api_key": ENV.STANNP_API_KEY,
        "base_url": ENV.STANNP_BASE_URL,
        "webhook_secret": ENV.STANNP_WEBHOOK_SECRET,
    },
    "intelliprint": {
        "api_key": ENV.INTELLIPRINT_API_KEY,
        "base_url": ENV.INTELLIPRINT_BASE_URL,
        "webhook_secret": ENV.INTELLIPRINT_WEBHOOK_SECRET,
    },
    "taylor": {
        "api_key": ENV.TAYLOR_API_KEY,
        "base_url": ENV.TAYLOR_BASE_URL,
        "webhook_secret": ENV.TAYLOR_WEBHOOK_SECRET,
        "status_map": json.loads(ENV.TAYLOR_STATUS_MAP) if ENV.TAYLOR_STATUS_MAP else None,
    },
}
for _kind, _conf in PRINTERS_CONF.items():
    _conf["enabled"] = _kind in ENABLED_PRINTERS

# ---------------------------------------------------------------------------- SERVICES
ENRICHMENT = {
    "backend": ENV.ENRICHMENT_BACKEND,
    "api_key": ENV.FARADAY_API_KEY,
    "base_url": ENV.FARADAY_BASE_URL,
    "target_id": ENV.FARADAY_TARGET_ID,
}
BILLING = {
    "backend": ENV.BILLING_BACKEND,
    "price_id": ENV.BILLING_PRICE_ID,
    "api_key": ENV.STRIPE_API_KEY,
    "base_url": ENV.STRIPE_BASE_URL,
}
DISCOUNTS = {
    "backend": ENV.DISCOUNTS_BACKEND,
    "code_secret": ENV.DISCOUNT_CODE_SECRET,
    "shop_url": ENV.SHOPIFY_SHOP_URL,
    "access_token": ENV.SHOPIFY_ACCESS_TOKEN,
    "api_version": ENV.SHOPIFY_API_VERSION,
}
PROOFING = {
    "backend": ENV.PROOFING_BACKEND,
    "api_key": ENV.PIXELIXE_API_KEY,
    "base_url": ENV.PIXELIXE_BASE_URL,
    "timeout_s": ENV.PROOF_TIMEOUT_S,
}
MAILING = {"concurrency": ENV.MAILING_CONCURRENCY, "lease_s": ENV.MAILING_LEASE_S, "roll_s": ENV.MAILING_ROLL_S}
# Each printer's (requests, seconds), shared by every worker (docs/ratelimits.md).
PRINTER_RATE_LIMITS = printer_limits(ENV.PRINTER_RATE_LIMITS)
RATE_LIMIT_BACKEND: str = ENV.RATE_LIMIT_BACKEND
RATE_LIMIT_REDIS_URL = ENV.RATE_LIMIT_REDIS_URL
# CSV uploads are files, so DATA_UPLOAD_MAX_MEMORY_SIZE does not cap them.
CSV_UPLOAD_MAX_BYTES = 200 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 5

# ---------------------------------------------------------------------------- I18N, STATIC
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "media"

# ---------------------------------------------------------------------------- SECURITY
if ENV.production:
    SECURE_SSL_REDIRECT = ENV.SECURE_SSL_REDIRECT
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# ---------------------------------------------------------------------------- LOGGING
# Log ids, never addresses (PII).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": ENV.LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
