"""The numbers a user looks at first, read from the stages' reports: on the report page and in the terminal.

Data kept, losses, the task metric before → after beside the in-context baseline, retention with
its interval and verdict, the general-loss shift, symptoms and safety. Each line says whether it
is fine (``ok``), a problem (``bad``) or only information (``info``), so the terminal can colour it.
"""

from __future__ import annotations

from typing import Any

SYMPTOM_NAMES = {
    "looping": "looping",
    "never_stops": "never stops",
    "empty": "empty",
    "refusal": "refuses",
    "wrong_language": "other language",
}


def headline_rows(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(what, value, ok|bad|info)`` rows from the collected stage reports."""
    rows: list[tuple[str, str, str]] = []
    cur = data.get("curation")
    if cur:
        rows.append(("records in → kept", f"{cur['records_in']} → {cur['kept']}", "info"))
    train = data.get("training")
    if train:
        tail = train.get("train_loss_tail", train.get("train_loss"))
        if tail is not None:
            rows.append(("train loss (last 10% of steps)", f"{tail:.4f}", "info"))
        if train.get("eval_loss") is not None:
            rows.append(("best eval loss", f"{train['eval_loss']:.4f}", "info"))
    ev = data.get("evaluation")
    if ev:
        rows += _evaluation_rows(ev)
    return rows


def _evaluation_rows(ev: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    primary, base, models = ev["primary_metric"], ev["base"], ev["models"]
    tuned = next((label for label in models if label != base and "icl" not in label), None)

    def metric(label: str | None) -> float | None:
        return models[label]["overall"].get(primary) if label in models else None

    if tuned and metric(base) is not None and metric(tuned) is not None:
        better = metric(tuned) >= metric(base)
        rows.append((f"{primary}: base → fine-tuned", f"{metric(base):.3f} → {metric(tuned):.3f}",
                     "ok" if better else "bad"))  # fmt: skip
    icl = next((label for label in models if "icl" in label), None)
    if icl and metric(icl) is not None:
        beaten = tuned is not None and metric(tuned) is not None and metric(tuned) > metric(icl)
        rows.append(
            (f"{primary}: base + in-context examples", f"{metric(icl):.3f}", "ok" if beaten else "bad")
        )
    for verdict in (ev.get("retention") or {}).values():
        lo, hi = verdict["drop_ci95"]
        rows.append((
            f"{verdict['benchmark']}: base → fine-tuned",
            f"{verdict['base']:.3f} → {verdict['tuned']:.3f} (drop {verdict['drop'] * 100:+.1f} pts, "
            f"95% CI {lo * 100:+.1f} to {hi * 100:+.1f}; {verdict['status']})",
            {"pass": "ok", "too small": "info"}.get(verdict["status"], "bad"),
        ))  # fmt: skip
    shift = ((models.get(tuned) or {}).get("general_loss") or {}).get("shift") if tuned else None
    if shift:
        rows.append(("general loss: base → fine-tuned",
                     f"{shift['base']:.3f} → {shift['tuned']:.3f} ({shift['verdict']})",
                     "info" if shift["verdict"] == "rose" else "ok"))  # fmt: skip
    if tuned:
        rows += _symptom_rows(ev.get("symptoms"), tuned) + _safety_rows(ev.get("safety"), base, tuned)
    return rows


def _symptom_rows(part: dict[str, Any] | None, tuned: str) -> list[tuple[str, str, str]]:
    gates = ((part or {}).get("gates") or {}).get(tuned)
    if not gates:
        return []
    risen = [
        f"{SYMPTOM_NAMES[name]} on {where} prompts ({v['status']})"
        for where, by_name in gates.items()
        for name, v in by_name.items()
        if v["status"] in ("warn", "fail")
    ]
    if risen:
        return [("symptoms of damage", "rose: " + ", ".join(risen), "bad")]
    unclear = sum(v["status"] == "too small" for by_name in gates.values() for v in by_name.values())
    note = f" ({unclear} too few prompts to tell)" if unclear else ""
    return [("symptoms of damage", f"no significant rise over the base{note}", "ok")]


def _safety_rows(part: dict[str, Any] | None, base: str, tuned: str) -> list[tuple[str, str, str]]:
    if not part or tuned not in part["models"] or base not in part["models"]:
        return []
    gates = part["gates"].get(tuned, {})
    rows = []
    for key, kind, what in (("harmful_refused", "harmful", "refuses harmful requests"),
                            ("benign_refused", "benign", "refuses benign look-alikes")):  # fmt: skip
        a, b = part["models"][base][key]["rate"], part["models"][tuned][key]["rate"]
        status = gates.get(kind, {}).get("status", "pass")
        rows.append((f"{what}: base → fine-tuned", f"{a:.0%} → {b:.0%} ({status})",
                     "bad" if status in ("warn", "fail") else "ok"))  # fmt: skip
    return rows


def print_headline(rows: list[tuple[str, str, str]], console) -> None:
    """The rows as a two-column table in the terminal, problems in red."""
    from rich.table import Table

    if not rows:
        return
    table = Table(title="headline", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value")
    for what, value, css in rows:
        style = {"ok": "green", "bad": "red"}.get(css)
        table.add_row(what, value, style=style)
    console.print(table)
