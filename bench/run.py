"""Run every benchmark of bench/ and print one line per metric.

Each ``bench/bench_*.py`` exposes ``run() -> list[dict]``; a metric dict has
``name``, ``value``, ``unit``, ``baseline`` (measured in the same run, so the
ratio survives a shared 2-core machine) and ``goal`` (the highest acceptable
value/baseline ratio), plus optional ``notes``.  Results also go to
bench/results.json (not committed).  Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmark {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(metric: dict[str, Any]) -> dict[str, Any]:
    baseline = float(metric["baseline"])
    value = float(metric["value"])
    ratio = value / baseline if baseline else float("inf")
    return {**metric, "ratio": round(ratio, 3), "ok": ratio <= float(metric["goal"])}


def main(argv: list[str]) -> int:
    only = set(argv)
    paths = sorted(p for p in HERE.glob("bench_*.py") if not only or p.stem in only)
    results: dict[str, dict[str, Any]] = {}
    if not paths:
        print("no benchmarks in bench/ yet")
    for path in paths:
        for metric in load(path).run():
            row = evaluate(metric)
            results[row["name"]] = row
            mark = "ok" if row["ok"] else "MISSED"
            print(
                f"{row['name']}: {row['value']:.4g} {row['unit']} | baseline {row['baseline']:.4g} {row['unit']}"
                f" | ratio {row['ratio']:.2f} (goal <= {row['goal']}) {mark}"
            )
    (HERE / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
