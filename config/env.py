"""Settings read from the environment, validated once by pydantic-settings.

Every variable the project reads is a field here; ``config.settings`` turns
them into Django settings.  In production (``DJANGO_ENV=production``) missing
secrets fail fast with a message naming the variable.
"""

from __future__ import annotations

from typing import Literal

from django.core.exceptions import ImproperlyConfigured
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production-5f1c0e"


class Env(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=True)

    DJANGO_ENV: Literal["development", "test", "production"] = "development"
    SECRET_KEY: str = ""
    DEBUG: bool | None = None
    ALLOWED_HOSTS: str = "localhost,127.0.0.1,[::1],testserver"
    CSRF_TRUSTED_ORIGINS: str = ""
    DATABASE_URL: str = ""
    SQLITE_PATH: str = "db.sqlite3"
    SQLITE_BUSY_TIMEOUT_S: int = Field(default=20, ge=1)
    Q_BROKER: str = "orm"  # orm | redis://... | sqs
    Q_WORKERS: int = Field(default=2, ge=1)
    Q_TIMEOUT_S: int = Field(default=120, ge=1)
    Q_RETRY_S: int = Field(default=600, ge=2)
    LOG_LEVEL: str = "INFO"
    SECURE_SSL_REDIRECT: bool = True
    # Where printers reach this site (the proof image links they fetch).
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"

    # Printers: credentials, endpoints and webhook secrets.
    LOB_API_KEY: str = ""
    LOB_BASE_URL: str = "https://api.lob.com/v1"
    LOB_WEBHOOK_SECRET: str = ""
    LOB_WEBHOOK_TOLERANCE_S: int = Field(default=300, ge=1)
    STANNP_API_KEY: str = ""
    STANNP_BASE_URL: str = "https://api-us1.stannp.com/v1"
    STANNP_WEBHOOK_SECRET: str = ""
    INTELLIPRINT_API_KEY: str = ""
    INTELLIPRINT_BASE_URL: str = "https://api.intelliprint.net/v1"
    INTELLIPRINT_WEBHOOK_SECRET: str = ""
    TAYLOR_API_KEY: str = ""
    TAYLOR_BASE_URL: str = ""
    TAYLOR_WEBHOOK_SECRET: str = ""
    TAYLOR_STATUS_MAP: str = ""  # JSON object {"9": "Processed", ...} overriding the spec's table
    SANDBOX_WEBHOOK_SECRET: str = ""
    SANDBOX_BASE_URL: str = "http://127.0.0.1:8765/sandbox/v1"  # the local printer simulator
    PRINTER_TIMEOUT_S: float = Field(default=20.0, gt=0)
    # Taylor has no public endpoint: enable it once TAYLOR_BASE_URL is set
    # (an enabled printer without a base URL stops start-up, see config/checks.py).
    ENABLED_PRINTERS: str = "sandbox,lob,stannp,intelliprint"

    # Services.
    ENRICHMENT_BACKEND: Literal["local", "faraday"] = "local"
    FARADAY_API_KEY: str = ""
    FARADAY_BASE_URL: str = "https://api.faraday.ai/v1"
    FARADAY_TARGET_ID: str = ""
    # Billing preflight: "local" reads the Organization's fields, "stripe" asks Stripe.
    BILLING_BACKEND: Literal["local", "stripe"] = "local"
    BILLING_PRICE_ID: str = "price_postcard"  # the price postcards must be billed at (drift check)
    STRIPE_API_KEY: str = ""
    STRIPE_BASE_URL: str = "https://api.stripe.com"
    # Discount codes: "local" keeps them in our database, "shopify" creates them in the shop.
    DISCOUNTS_BACKEND: Literal["local", "shopify"] = "local"
    DISCOUNT_CODE_SECRET: str = ""  # derives the codes; default SECRET_KEY
    SHOPIFY_SHOP_URL: str = ""  # https://<shop>.myshopify.com
    SHOPIFY_ACCESS_TOKEN: str = ""
    SHOPIFY_API_VERSION: str = "2025-01"
    # Proof images: "local" draws them with Pillow, "pixelixe" asks Pixelixe,
    # "fast" makes no image (benchmarks only).
    PROOFING_BACKEND: Literal["local", "fast", "pixelixe"] = "local"
    PIXELIXE_API_KEY: str = ""
    PIXELIXE_BASE_URL: str = "https://studio.pixelixe.com/api"
    PROOF_TIMEOUT_S: float = Field(default=60.0, gt=0)
    # Mailing: printer calls in flight per worker, and each printer's shared
    # request limit, JSON {"lob": [150, 5], ...} (docs/ratelimits.md).
    MAILING_CONCURRENCY: int = Field(default=16, ge=1)
    MAILING_LEASE_S: int = Field(default=600, ge=10)  # how long a mailing claim lasts before the sweeper takes it back
    # How long one mailing run keeps claiming the next batch behind the calls in flight (0: one batch a
    # run).  Measured: the rate held at a printer's limit 0.955 -> 0.965, none over it even with both cores
    # busy, since the permit is taken right before the request goes (bench/README.md, "Rolling runs").
    MAILING_ROLL_S: float = Field(default=10.0, ge=0)
    PRINTER_RATE_LIMITS: str = ""
    RATE_LIMIT_BACKEND: Literal["", "database", "redis"] = ""  # default: Redis when the broker is, else the database
    RATE_LIMIT_REDIS_URL: str = ""

    @property
    def production(self) -> bool:
        return self.DJANGO_ENV == "production"


# What production cannot start without, and why.
PRODUCTION_REQUIRED = {
    "SECRET_KEY": "signs sessions and django-q2 task payloads",
    "DATABASE_URL": "production runs on PostgreSQL",
    "ALLOWED_HOSTS": "the host names this site answers to",
}


def load_env() -> Env:
    try:
        env = Env()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ImproperlyConfigured(f"Invalid environment: {problems}") from exc
    if env.production:
        import os

        missing = [name for name in PRODUCTION_REQUIRED if not os.environ.get(name)]
        if missing:
            details = ", ".join(f"{n} ({PRODUCTION_REQUIRED[n]})" for n in missing)
            raise ImproperlyConfigured(f"DJANGO_ENV=production needs these environment variables: {details}")
        if env.SECRET_KEY == DEV_SECRET_KEY or len(env.SECRET_KEY) < 50:
            raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 50 characters in production")
    return env
