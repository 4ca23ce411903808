"""``manage.py printer_simulator`` stops on SIGTERM as it does on Ctrl-C:
``manage.py demo_serve`` (and process managers) stop it that way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_simulator_command_stops_cleanly_on_a_signal(signum):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.test_settings", "PYTHONUNBUFFERED": "1"}
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py"), "printer_simulator", "--port", "0"]
    # SIGINT must not be ignored in the command, as it is when this test runs as a background job of a shell.
    unignore = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", unignore, *manage],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while "printer simulator on" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "printer simulator on http://127.0.0.1:" in line
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "stopped" in rest
