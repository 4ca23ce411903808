"""``manage.py demo_serve``: the demo as a deployment on one machine, until Ctrl-C.

Three child processes share one environment: the local printer simulator
(``printer_simulator``, posting signed webhooks back to the admin), a django-q2
cluster (``qcluster``: "Run now", the pipeline tick, webhook processing) and the
admin (``runserver``).  The environment points the sandbox printer at the
simulator (``SANDBOX_BASE_URL``), gives the simulator the app's sandbox webhook
secret (``SANDBOX_WEBHOOK_SECRET``) and builds proof links on the served address
(``PUBLIC_BASE_URL``).

Ctrl-C, SIGTERM or SIGHUP stops all three (a signal the command was started
ignoring, as SIGHUP under nohup, stays ignored); so does any one of them
stopping on its own, which is reported (and the command exits with code 1).
Each child runs in its own process group, which is swept once the child has
exited, so nothing it started (runserver's reloaded server, qcluster's
workers) outlives it.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

SIMULATOR = "printer simulator"
WORKER = "task worker (qcluster)"
SERVER = "admin (runserver)"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Child:
    """One process to run: ``argv``, and the address it listens on once ready (if any)."""

    name: str
    argv: list[str]
    listens: tuple[str, int] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def split_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) as (host, port), or a CommandError."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise CommandError(f"--addr {addr!r} is not HOST:PORT (e.g. 127.0.0.1:8000).")
    return host.strip("[]"), int(port)


def local_host(host: str) -> str:
    """The address to reach a server on this machine that listens on ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 (a comparison, not a bind)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def port_in_use(host: str, port: int) -> bool:
    """Something listens on ``host:port`` already (a server left running, another
    demo): binding the way the servers do (SO_REUSEADDR) fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:  # any other error (an address not this machine's) is the server's to report
            return exc.errno == errno.EADDRINUSE
    return False


def demo_env(base: Mapping[str, str], *, public_url: str, sandbox_url: str, webhook_secret: str) -> dict[str, str]:
    """The environment every child gets: ``base`` (this process's) plus where
    the sandbox printer is, the secret both ends sign its webhooks with, and
    where printers fetch proof images.  Unbuffered, so the children's lines
    appear as they happen even when the output is a file."""
    env = dict(base)
    env.update(
        PUBLIC_BASE_URL=public_url,
        SANDBOX_BASE_URL=sandbox_url,
        SANDBOX_WEBHOOK_SECRET=webhook_secret,
        PYTHONUNBUFFERED="1",
    )
    return env


def demo_children(*, host: str, port: int, simulator_port: int, webhook_interval: float, reload: bool) -> list[Child]:
    """The three processes, in the order they start (the simulator first, so the
    worker's first card finds it; the admin last)."""
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    server = [*manage, "runserver", f"{url_host(host)}:{port}"] + ([] if reload else ["--noreload"])
    target = f"http://{url_host(local_host(host))}:{port}"
    simulator = [*manage, "printer_simulator", "--host", "127.0.0.1", "--port", str(simulator_port)]
    simulator += ["--webhook-target", target, "--webhook-interval", str(webhook_interval)]
    return [
        Child(SIMULATOR, simulator, listens=("127.0.0.1", simulator_port)),
        Child(WORKER, [*manage, "qcluster"]),
        Child(SERVER, server, listens=(local_host(host), port)),
    ]


class Supervisor:
    """Start ``children`` in order, wait for a stop signal or for one of them to
    exit, then stop them all.  ``run`` returns None after a signal, else a
    sentence naming the child that exited."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        env: Mapping[str, str],
        cwd: str,
        say: Callable[[str], None],
        grace_s: float = 15.0,
        ready_s: float = 30.0,
        poll_s: float = 0.2,
    ) -> None:
        self.children = list(children)
        self.env = dict(env)
        self.cwd = cwd
        self.say = say
        self.grace_s = grace_s
        self.ready_s = ready_s
        self.poll_s = poll_s
        self.signalled: str | None = None
        self.signals = 0

    def run(self, on_ready: Callable[[], None] = lambda: None) -> str | None:
        with self._signals():
            try:
                for child in self.children:
                    self._start(child)
                    problem = self._wait_ready(child)
                    if problem or self.signalled:
                        return problem
                on_ready()
                while not self.signalled:
                    for child in self.children:
                        code = _peek(child)
                        if code is not None:
                            return f"the {child.name} stopped on its own ({_how(code)}); stopping the others."
                    time.sleep(self.poll_s)
                return None
            finally:
                if self.signalled:
                    self.say(f"got {self.signalled}: stopping")
                self.stop_all()

    def _start(self, child: Child) -> None:
        # A process group of its own: Ctrl-C reaches only this process, which stops
        # the children in order; and the group is what gets swept afterwards.
        child.proc = subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
            child.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.say(f"started the {child.name} (pid {child.proc.pid})")

    def _wait_ready(self, child: Child) -> str | None:
        """None once ``child`` listens (or has no port), else why not."""
        if child.listens is None:
            return None
        deadline = time.monotonic() + self.ready_s
        while not self.signalled:
            code = _peek(child)
            if code is not None:
                return f"the {child.name} stopped before it listened on {_addr(child.listens)} ({_how(code)})."
            try:
                socket.create_connection(child.listens, timeout=0.5).close()
                return None
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.say(f"the {child.name} does not listen on {_addr(child.listens)} yet; going on")
                return None
            time.sleep(0.1)
        return None

    def stop_all(self) -> None:
        """SIGTERM to every running child (the admin first), a shared grace period
        (cut short by another Ctrl-C), then SIGKILL to what is left, and every
        child's process group swept."""
        running = [c for c in reversed(self.children) if c.proc is not None and _peek(c) is None]
        signals = self.signals
        for child in running:
            assert child.proc is not None
            with suppress(ProcessLookupError, PermissionError):  # gone already
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for child in running:
            while _peek(child) is None and time.monotonic() < deadline and self.signals == signals:
                time.sleep(0.05)
            if _peek(child) is None:
                late = "another signal came" if self.signals != signals else f"{self.grace_s:g} s passed"
                self.say(f"the {child.name} was still running when {late}: killed")
        for child in reversed(self.children):
            if child.proc is None:
                continue
            if child.proc.returncode is None:  # not reaped yet: its group id cannot have been reused
                with suppress(ProcessLookupError, PermissionError):  # gone already
                    os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        if running:
            self.say(f"stopped the {', the '.join(c.name for c in running)}")

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.signalled = signal.Signals(signum).name
            self.signals += 1

        # A signal this process was started ignoring stays ignored (`nohup make demo` outlives its terminal).
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)


def _peek(child: Child) -> int | None:
    """The child's exit code once it has exited, else None.  Where it can, this
    leaves the exited child unreaped, so its process group id stays its own
    until ``stop_all`` has swept the group."""
    proc = child.proc
    if proc is None:
        return None
    if proc.returncode is not None:
        return proc.returncode
    if hasattr(os, "waitid"):
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return proc.poll()
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
    return proc.poll()


def _how(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def _addr(address: tuple[str, int]) -> str:
    return f"{url_host(address[0])}:{address[1]}"


class Command(BaseCommand):
    help = (
        "Serve the demo like a deployment on one machine: the admin (runserver on --addr), a django-q2 cluster "
        "(qcluster) and the local printer simulator (webhooks back to the admin), with one environment, until "
        "Ctrl-C stops all three."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="HOST:PORT to serve the admin on.")
        parser.add_argument("--simulator-port", type=int, default=8765, help="The printer simulator's port.")
        parser.add_argument(
            "--public-url", default="", help="PUBLIC_BASE_URL for every process (default: http://<addr>)."
        )
        parser.add_argument("--webhook-interval", type=float, default=2.0, help="Seconds between a piece's webhooks.")
        parser.add_argument("--grace", type=float, default=15.0, help="Seconds each process gets to stop.")
        parser.add_argument("--noreload", action="store_true", help="Run the admin without the autoreloader.")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = split_addr(options["addr"])
        sim_port = options["simulator_port"]
        if not 0 < sim_port <= 65535 or sim_port == port:
            raise CommandError(f"--simulator-port {sim_port} is not a free port of its own (1 to 65535).")
        if not options["webhook_interval"] >= 0 or not options["grace"] >= 0:
            raise CommandError("--webhook-interval and --grace must be 0 or more seconds.")
        # Checked first: a child that cannot listen would only say so after the others started
        # (and a server left running would answer the readiness check in its place).
        for name, where, option in (
            (SERVER, (host, port), "--addr"),
            (SIMULATOR, ("127.0.0.1", sim_port), "--simulator-port"),
        ):
            if port_in_use(*where):
                raise CommandError(
                    f"{_addr(where)} (for the {name}) is in use: stop what listens there, or choose another "
                    f"{option} (PORT=… or SIMULATOR_PORT=… with make demo)."
                )
        admin = f"http://{url_host(host)}:{port}"
        webhooks = f"http://{url_host(local_host(host))}:{port}/webhooks/sandbox/"
        sandbox_url = f"http://127.0.0.1:{sim_port}/sandbox/v1"
        env = demo_env(
            os.environ,
            public_url=(options["public_url"] or admin).rstrip("/"),
            sandbox_url=sandbox_url,
            webhook_secret=str(settings.PRINTERS_CONF["sandbox"].get("webhook_secret") or ""),
        )
        children = demo_children(
            host=host,
            port=port,
            simulator_port=sim_port,
            webhook_interval=options["webhook_interval"],
            reload=not options["noreload"],
        )

        def say(line: str) -> None:
            self.stdout.write(f"demo_serve: {line}")
            self.stdout.flush()

        def ready() -> None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Serving the admin on {admin}/admin/ with a task worker (qcluster) and the printer simulator "
                    f"({sandbox_url}, webhooks back to {webhooks}) running beside it: "
                    '"Run now", retries and new imports go all the way to the printer and back. '
                    "Ctrl-C stops all three."
                )
            )
            self.stdout.flush()

        supervisor = Supervisor(children, env=env, cwd=str(settings.BASE_DIR), say=say, grace_s=options["grace"])
        problem = supervisor.run(on_ready=ready)
        if problem:
            raise CommandError(problem)
