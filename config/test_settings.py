"""With these settings, tests run faster and never leave the machine."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from config.settings import *  # noqa: F403
from config.settings import DATABASES, PRINTERS_CONF, Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
Q_CLUSTER = {**Q_CLUSTER, "sync": True}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: race tests need several connections to one database.
    # One file per test run, so concurrent runs on one machine never share it.
    DATABASES["default"]["TEST"] = {"NAME": f"test_postcards_{os.getpid()}.sqlite3"}

# Known secrets so webhook tests can sign; production never sees these.
for _kind in PRINTERS_CONF:
    PRINTERS_CONF[_kind]["webhook_secret"] = PRINTERS_CONF[_kind]["webhook_secret"] or f"test-{_kind}-secret"
PRINTERS_CONF["intelliprint"]["webhook_secret"] = "whsec_dGVzdC1pbnRlbGxpcHJpbnQtc2VjcmV0LWtleQ=="

# Proof images and uploads go to a throwaway folder per test run, removed at exit.
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="postcards-test-media-"))
atexit.register(shutil.rmtree, MEDIA_ROOT, ignore_errors=True)

# Printer calls in tests take permits from a limiter of this process: the test
# runs inside a transaction, which the shared database limiter refuses to join.
RATE_LIMIT_BACKEND = "process"

# The sandbox printer points nowhere unless a test starts the simulator (the
# `simulator` fixture): a test never mails to a simulator left running here.
PRINTERS_CONF["sandbox"]["base_url"] = "http://127.0.0.1:9/sandbox/v1"
