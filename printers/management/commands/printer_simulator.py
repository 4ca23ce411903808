"""``manage.py printer_simulator``: serve the local printer simulator until interrupted."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.commands import check_seconds
from printers.simulator import Fault, Piece, Simulator


class Command(BaseCommand):
    help = (
        "Serve the local printer simulator (the sandbox, Lob, Stannp, IntelliPrint and Taylor wire formats) "
        "on --host:--port (default 127.0.0.1:8765). With --webhook-target, every new piece walks its vendor's "
        "happy path as signed webhooks POSTed to <target>/webhooks/<vendor>/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8765, help="Port to listen on (default 8765).")
        parser.add_argument("--webhook-target", default="", help="e.g. http://127.0.0.1:8000")
        parser.add_argument("--webhook-interval", type=float, default=2.0, help="seconds between webhooks")
        parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["port"] <= 65535:
            raise CommandError(f"--port {options['port']} is not a port (0 to 65535).")
        for name in ("webhook_interval", "latency"):
            check_seconds(options[name], f"--{name.replace('_', '-')}")
        secrets = {kind: str(conf.get("webhook_secret") or "") for kind, conf in settings.PRINTERS_CONF.items()}
        try:
            sim = Simulator(secrets=secrets, host=options["host"], port=options["port"])
        except OSError as exc:  # the port is taken, the address is not this machine's
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}; "
                "choose another --port (or stop what uses it)."
            ) from None
        if options["latency"] > 0:
            for vendor in sim.handlers:
                sim.inject(vendor, Fault.latency(options["latency"], times=2**62))
        target = str(options["webhook_target"]).rstrip("/")
        if target:
            interval = float(options["webhook_interval"])

            def walk(piece: Piece) -> None:
                # Statuses spaced ``interval`` apart on the simulator's clock, delivered as they happen.
                steps = sim.timeline(piece.vendor, piece.id, spacing_s=interval)

                def run() -> None:
                    for step in steps:
                        time.sleep(interval)
                        for delivery in sim.fire_webhooks(lambda v: f"{target}/webhooks/{v}/", [step]):
                            self.stdout.write(
                                f"webhook {step.vendor} {step.piece_id} {step.status} -> {delivery.status_code}"
                            )

                threading.Thread(target=run, daemon=True).start()

            sim.store.on_create.append(walk)
        # SIGTERM (how `manage.py demo_serve` and process managers stop it) stops it as Ctrl-C does.
        on_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
        try:
            vendors = ", ".join(sorted(sim.handlers))
            self.stdout.write(f"printer simulator on {sim.base_url} ({vendors}); Ctrl-C to stop")
            sim.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("stopped")
        finally:
            sim.stop()
            if on_main_thread:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
