"""Run every benchmark of bench/ on SQLite and on PostgreSQL; one line per metric.

Each ``bench/bench_*.py`` exposes ``run() -> list[dict]``; a metric dict has
``name``, ``value``, ``unit``, ``baseline`` (measured in the same run on the
same database, so the ratio survives a shared 2-core machine) and ``goal``
(the highest acceptable value/baseline ratio), plus optional ``notes``.
``better: "higher"`` turns the goal into the lowest acceptable ratio (a
throughput against a slower design); ``baseline: None`` is a figure with
nothing to compare against (ratio "n/a", never a miss).  ``budget: True``
marks a baseline that is a fixed budget rather than a measurement (the
admin's 300 ms per page view): the line says "budget" instead of "baseline".

Django's settings are fixed once per process, so each (benchmark, database)
pair runs in a child process: SQLite on a throwaway file, PostgreSQL on
``DATABASE_URL`` when it names a PostgreSQL database, else on a database this
run creates on 127.0.0.1:5432 and drops afterwards.  When PostgreSQL cannot be
reached its lines say "skipped".  Results also go to bench/results.json (not
committed).  Exit status 1 when a goal is missed.

``python bench/run.py [bench_import ...] [--db sqlite|postgresql]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASES = ("sqlite", "postgresql")
RESULT_MARK = "BENCH-RESULT "


def evaluate(metric: dict[str, Any]) -> dict[str, Any]:
    if metric.get("baseline") is None:
        return {**metric, "ratio": None, "ok": True}
    baseline = float(metric["baseline"])
    value = float(metric["value"])
    ratio = value / baseline if baseline else float("inf")
    goal = float(metric["goal"])
    ok = ratio >= goal if metric.get("better") == "higher" else ratio <= goal
    return {**metric, "ratio": round(ratio, 3), "ok": ok}


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


@contextmanager
def postgres_url() -> Iterator[str]:
    """``DATABASE_URL`` when it is PostgreSQL, else a fresh database created
    here and dropped on the way out.  Raises ``OSError`` when the server
    cannot be reached."""
    import psycopg

    given = os.environ.get("DATABASE_URL", "")
    server = given if _is_postgres(given) else f"{DEFAULT_SERVER}/postgres"
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        where = server.rsplit("@", 1)[-1]  # never print a password
        raise OSError(f"PostgreSQL not reachable at {where}: {str(exc).strip().splitlines()[0]}") from exc
    if _is_postgres(given):
        admin.close()
        yield given
        return
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{DEFAULT_SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(path: Path, database: str, url: str = "") -> list[dict[str, Any]]:
    """Run one benchmark module in a child process on one database."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url:
        env["DATABASE_URL"] = url
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location({path.stem!r}, {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print({RESULT_MARK!r} + json.dumps(module.run()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=HERE.parent, stdout=subprocess.PIPE, text=True, check=False
    )
    lines = []
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            lines.append(line)
        else:
            print(line)  # whatever the benchmark said on its way
    if done.returncode or not lines:
        raise RuntimeError(f"{path.stem} on {database} failed (exit status {done.returncode}); see its output above")
    metrics: list[dict[str, Any]] = json.loads(lines[-1][len(RESULT_MARK) :])
    return [{**m, "name": f"{m['name']}[{database}]", "database": database} for m in metrics]


def _print(row: dict[str, Any]) -> None:
    if row["ratio"] is None:
        print(f"{row['name']}: {row['value']:.4g} {row['unit']} | baseline n/a | ratio n/a", flush=True)
        return
    mark = "ok" if row["ok"] else "MISSED"
    bound = ">=" if row.get("better") == "higher" else "<="
    against = "budget" if row.get("budget") else "baseline"
    print(
        f"{row['name']}: {row['value']:.4g} {row['unit']} | {against} {row['baseline']:.4g} {row['unit']}"
        f" | ratio {row['ratio']:.2f} (goal {bound} {row['goal']}) {mark}",
        flush=True,
    )


def main(argv: list[str]) -> int:
    databases = list(DATABASES)
    if "--db" in argv:
        at = argv.index("--db")
        databases = [argv[at + 1]]
        argv = argv[:at] + argv[at + 2 :]
    only = set(argv)
    paths = sorted(p for p in HERE.glob("bench_*.py") if not only or p.stem in only)
    results: dict[str, dict[str, Any]] = {}
    failed = False
    if not paths:
        print("no benchmarks in bench/ yet")
    for database in databases:
        for path in paths:
            try:
                if database == "sqlite":
                    metrics = run_child(path, database)
                else:
                    with postgres_url() as url:
                        metrics = run_child(path, database, url)
            except OSError as exc:
                print(f"{path.stem}[{database}]: skipped ({exc})", flush=True)
                continue
            except RuntimeError as exc:
                print(f"{path.stem}[{database}]: FAILED ({exc})", flush=True)
                failed = True
                continue
            for metric in metrics:
                row = evaluate(metric)
                results[row["name"]] = row
                _print(row)
    (HERE / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0 if not failed and all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
