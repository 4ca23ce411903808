"""``manage.py demo_serve``: the environment its children share, and that they
all stop (with whatever they started) when one exits or a signal comes.
Fake children stand in for runserver, qcluster and the printer simulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from campaigns.management.commands import demo_serve
from campaigns.management.commands.demo_serve import SERVER, SIMULATOR, WORKER, Child

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups and signals are POSIX")

# A child that records its environment, pid, process group and a grandchild
# (as runserver's reloaded server and qcluster's workers are), waits until all
# of its siblings have recorded theirs, then does what ``mode`` says.
FAKE = r"""
import json, os, signal, socket, subprocess, sys, time
name, out, expected, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
parent = os.getppid()


def signal_parent(signum):
    # Only the command that started us: once it has gone we belong to init
    # (or a subreaper), which must never get a signal from a test.
    if os.getppid() == parent:
        os.kill(parent, signum)


grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
keys = ("PUBLIC_BASE_URL", "SANDBOX_BASE_URL", "SANDBOX_WEBHOOK_SECRET", "PYTHONUNBUFFERED")
record = {"pid": os.getpid(), "pgid": os.getpgid(0), "grandchild": grandchild.pid,
          "env": {k: os.environ.get(k) for k in keys}, "started": time.time()}
with open(os.path.join(out, name + ".tmp"), "w") as f:
    json.dump(record, f)
os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name + ".json"))
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode.startswith("listen:"):
    time.sleep(0.5)  # slow to come up: the next child must wait for it
    server = socket.create_server(("127.0.0.1", int(mode.split(":")[1])))
deadline = time.time() + 20
while len([n for n in os.listdir(out) if n.endswith(".json")]) < expected and time.time() < deadline:
    time.sleep(0.02)
if mode == "exit":
    sys.exit(3)
if mode == "term-parent":
    signal_parent(signal.SIGTERM)
if mode == "hup-then-term-parent":
    signal_parent(signal.SIGHUP)
    time.sleep(0.5)
    signal_parent(signal.SIGTERM)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Replace the three real children with fakes; ``fakes(modes)`` returns the
    keyword arguments the command asked for its children with (``fakes.asked()``,
    once the command has run: it runs in a process of its own)."""
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    out = tmp_path / "records"
    out.mkdir()

    def install(modes: dict[str, str], listens: dict[str, int] | None = None, expected: int | None = None) -> None:
        def children(**kwargs):
            (tmp_path / "asked.json").write_text(json.dumps(kwargs))  # not in ``out``: the fakes count those
            return [
                Child(
                    name,
                    [sys.executable, str(script), name.split()[0], str(out), str(expected or len(modes)), mode],
                    listens=("127.0.0.1", (listens or {})[name]) if name in (listens or {}) else None,
                )
                for name, mode in modes.items()
            ]

        monkeypatch.setattr(demo_serve, "demo_children", children)
        # The fakes listen on no port of the command's: the ports it checks may be anyone's here.
        monkeypatch.setattr(demo_serve, "port_in_use", lambda host, port: False)

    install.records = lambda: {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    install.asked = lambda: json.loads((tmp_path / "asked.json").read_text())
    return install


def run(*args: str) -> str:
    """The command's output.  It runs in a forked process of its own: the
    fakes signal their parent as a Ctrl-C reaches the command, and a signal
    that came late (a loaded machine) must never reach the test runner, which
    it would stop without a word.  A ``CommandError`` is raised here again;
    the last line says whether SIGHUP was still ignored when it returned."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the command's process
        os.close(read)
        out, code = StringIO(), 0
        try:
            call_command("demo_serve", *args, stdout=out)
        except CommandError as exc:
            out.write(f"\n{ERROR_MARK}{exc}")
            code = 2
        except BaseException as exc:  # reported to the test, whatever it is
            out.write(f"\n{ERROR_MARK}unexpected {type(exc).__name__}: {exc}")
            code = 3
        ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        out.write(f"\n{HUP_MARK}{'ignored' if ignored else 'handled'}")
        with os.fdopen(write, "w") as pipe:
            pipe.write(out.getvalue())
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    body = text.rsplit(f"\n{HUP_MARK}", 1)[0]
    if code == 2:
        raise CommandError(body.rsplit(ERROR_MARK, 1)[1])
    if code != 0:
        raise AssertionError(f"the command's process ended with {code}: {body}")
    return text


ERROR_MARK = "@@command-error@@ "
HUP_MARK = "@@sighup@@ "


def test_the_children_share_one_environment_and_stop_with_the_server(fakes):
    fakes({SIMULATOR: "sleep", WORKER: "sleep", SERVER: "exit"})
    with pytest.raises(CommandError, match=r"the admin \(runserver\) stopped on its own \(exit code 3\)"):
        run("--addr", "127.0.0.1:8021", "--simulator-port", "8799", "--grace", "5", "--webhook-interval", "0.5")
    asked = {"host": "127.0.0.1", "port": 8021, "simulator_port": 8799, "webhook_interval": 0.5, "reload": True}
    assert fakes.asked() == asked
    records = fakes.records()
    assert set(records) == {"printer", "task", "admin"}
    secret = settings.PRINTERS_CONF["sandbox"]["webhook_secret"]
    assert secret  # the app verifies the sandbox's webhooks with it, the simulator signs them with it
    for record in records.values():
        assert record["env"] == {
            "PUBLIC_BASE_URL": "http://127.0.0.1:8021",
            "SANDBOX_BASE_URL": "http://127.0.0.1:8799/sandbox/v1",
            "SANDBOX_WEBHOOK_SECRET": secret,
            "PYTHONUNBUFFERED": "1",
        }
        # Its own process group (Ctrl-C reaches only the command, which stops them in order) ...
        assert record["pgid"] == record["pid"] != os.getpgid(0)
        # ... and nothing of it is left: the child, and what the child started.
        assert gone(record["pid"])
        assert gone(record["grandchild"])


def test_a_signal_stops_every_child_cleanly(fakes):
    fakes({SIMULATOR: "sleep", WORKER: "sleep", SERVER: "term-parent"})
    text = run("--addr", "127.0.0.1:8021", "--public-url", "https://demo.example.com/", "--grace", "5")
    assert "got SIGTERM: stopping" in text
    assert "stopped the admin (runserver), the task worker (qcluster), the printer simulator" in text
    assert "Serving the admin on http://127.0.0.1:8021/admin/ with a task worker (qcluster) and the printer" in text
    assert '"Run now", retries and new imports go all the way to the printer and back' in text
    records = fakes.records()
    assert {r["env"]["PUBLIC_BASE_URL"] for r in records.values()} == {"https://demo.example.com"}
    for record in records.values():
        assert gone(record["pid"])
        assert gone(record["grandchild"])


def test_a_signal_ignored_at_start_stays_ignored(fakes):
    """Under ``nohup make demo`` SIGHUP is ignored: closing the terminal must not stop the demo."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        fakes({SIMULATOR: "sleep", WORKER: "sleep", SERVER: "hup-then-term-parent"})
        text = run("--grace", "5")
        assert text.endswith(f"{HUP_MARK}ignored")  # as the command found it, when it returned
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert "got SIGTERM: stopping" in text
    assert "SIGHUP" not in text


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(fakes):
    fakes({SIMULATOR: "sleep", WORKER: "ignore-term", SERVER: "exit"})
    started = time.monotonic()
    with pytest.raises(CommandError, match="stopped on its own"):
        run("--grace", "0.5")
    assert time.monotonic() - started < 15
    worker = fakes.records()["task"]
    assert gone(worker["pid"])
    assert gone(worker["grandchild"])


def test_the_next_child_waits_until_the_simulator_listens(fakes):
    port = free_port()
    fakes({SIMULATOR: f"listen:{port}", WORKER: "sleep", SERVER: "exit"}, listens={SIMULATOR: port})
    with pytest.raises(CommandError, match="stopped on its own"):
        run("--grace", "5")
    records = fakes.records()
    assert records["task"]["started"] >= records["printer"]["started"] + 0.5


def test_a_simulator_that_cannot_start_is_reported_and_nothing_else_starts(fakes):
    port = free_port()
    fakes({SIMULATOR: "exit", WORKER: "sleep", SERVER: "sleep"}, listens={SIMULATOR: port}, expected=1)
    with pytest.raises(
        CommandError, match=rf"the printer simulator stopped before it listened on 127.0.0.1:{port} \(exit code 3\)"
    ):
        run("--grace", "5")
    records = fakes.records()
    assert set(records) == {"printer"}
    assert gone(records["printer"]["grandchild"])


def test_the_real_children():
    children = demo_serve.demo_children(
        host="0.0.0.0", port=8021, simulator_port=8799, webhook_interval=2.0, reload=True
    )
    assert [c.name for c in children] == [SIMULATOR, WORKER, SERVER]
    simulator, worker, server = children
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    assert simulator.argv == [
        *manage,
        "printer_simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "8799",
        "--webhook-target",
        "http://127.0.0.1:8021",  # reachable from this machine, whatever address the admin listens on
        "--webhook-interval",
        "2.0",
    ]
    assert simulator.listens == ("127.0.0.1", 8799)
    assert worker.argv == [*manage, "qcluster"]
    assert worker.listens is None
    assert server.argv == [*manage, "runserver", "0.0.0.0:8021"]
    assert server.listens == ("127.0.0.1", 8021)
    no_reload = demo_serve.demo_children(
        host="127.0.0.1", port=8000, simulator_port=8765, webhook_interval=2.0, reload=False
    )
    assert no_reload[-1].argv[-1] == "--noreload"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--addr", "8000"], "is not HOST:PORT"),
        (["--addr", "127.0.0.1:99999"], "is not HOST:PORT"),
        (["--simulator-port", "8000"], "is not a free port of its own"),
        (["--grace", "-1"], "must be 0 or more seconds"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(fakes, args, message):
    fakes({SIMULATOR: "sleep", WORKER: "sleep", SERVER: "sleep"})
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert fakes.records() == {}


def test_a_port_in_use_is_refused_before_anything_starts(monkeypatch):
    """A simulator or a server left running would answer the readiness check in
    place of the child, which would only fail after the others started."""
    started: list = []
    monkeypatch.setattr(demo_serve, "demo_children", lambda **kwargs: started.append(kwargs) or [])
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert demo_serve.port_in_use("127.0.0.1", port)
        assert demo_serve.port_in_use("0.0.0.0", port)  # what runserver 0.0.0.0:<port> would meet
        with pytest.raises(CommandError, match=rf"127.0.0.1:{port} \(for the printer simulator\) is in use"):
            run("--addr", f"127.0.0.1:{free_port()}", "--simulator-port", str(port))
        with pytest.raises(CommandError, match=rf"127.0.0.1:{port} \(for the admin \(runserver\)\) is in use"):
            run("--addr", f"127.0.0.1:{port}", "--simulator-port", str(free_port()))
    assert started == []
    assert not demo_serve.port_in_use("127.0.0.1", port)
