"""Mermaid diagrams of the state machines, generated from the FSM tables."""

from __future__ import annotations

from django.db import models

from common.fsm import transition_table


def mermaid(model: type[models.Model], field: str = "status") -> str:
    """``graph LR`` text of ``model``'s machine, one line per edge, labelled with
    the transition method; sorted so the output is stable."""
    lines = ["graph LR"]
    rows = sorted(
        (source, target, method)
        for method, sources in transition_table(model, field).items()
        for source, target in sources.items()
    )
    lines += [f"    {source} -->|{method}| {target}" for source, target, method in rows]
    return "\n".join(lines) + "\n"
