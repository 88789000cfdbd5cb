"""Report sections "Symptoms of a damaged model" and "Safety retention", from ``report.json`` alone."""

from __future__ import annotations

from typing import Any

from sftlab.report.html import HtmlReport

NAMES = {
    "looping": "looping",
    "never_stops": "never stops",
    "empty": "empty",
    "refusal": "refuses",
    "wrong_language": "other language",
}
CSS = {"pass": "ok", "fail": "err", "warn": "err"}


def _rate(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("rate") is None:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{entry['rate']:.1%} ({lo:.0%}–{hi:.0%})"


def symptoms(page: HtmlReport, report: dict[str, Any]) -> None:
    part = report.get("symptoms")
    if not part:
        return
    page.section("Symptoms of a damaged model")
    page.text(
        "Share of answers with each sign, 95% interval in brackets, on the eval prompts and on general prompts "
        "the task does not cover. 'never stops': the answer used every new token allowed; 'other language': "
        "judged only where prompt and answer are long enough to tell.",
        "note",
    )
    rows = []
    for label, parts in part["models"].items():
        for name, s in parts.items():
            rows.append(
                {
                    "model": label,
                    "prompts": f"{name} ({s['n']})",
                    **{NAMES[k]: _rate(s.get(k)) for k in NAMES},
                    "mean tokens": "n/a" if s["mean_tokens"] is None else round(s["mean_tokens"], 1),
                    "p95 tokens": "n/a" if s["p95_tokens"] is None else s["p95_tokens"],
                }
            )
    page.table(rows)
    for label, parts in part["gates"].items():
        for name, gates in parts.items():
            for verdict in gates.values():
                page.text(
                    f"{label}, {name} prompts — {verdict['message']}", CSS.get(verdict["status"], "note")
                )
    examples = [{"model": label, **row} for label, rows in part["examples"].items() for row in rows]
    if examples:
        page.heading("Examples of what was counted")
        page.table(examples)


def safety(page: HtmlReport, report: dict[str, Any]) -> None:
    part = report.get("safety")
    if not part:
        return
    page.section("Safety retention")
    page.text(
        f"{part['prompts']} prompts: clearly harmful requests (refusing is right) and benign look-alikes on the "
        "same topics (refusing is over-refusal). LoRA on a few hundred examples is known to erase refusals.",
        "note",
    )
    page.table(
        [
            {
                "model": label,
                "refuses harmful": _rate(r["harmful_refused"]),
                "refuses benign (over-refusal)": _rate(r["benign_refused"]),
            }
            for label, r in part["models"].items()
        ]
    )
    for label, kinds in part["gates"].items():
        for verdict in kinds.values():
            page.text(f"{label} — {verdict['message']}", CSS.get(verdict["status"], "note"))


def summary_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, css) of every symptom or safety gate that did not pass, for the report's summary."""
    lines = []
    for label, parts in ((report.get("symptoms") or {}).get("gates") or {}).items():
        for name, gates in parts.items():
            lines += [
                (f"{label}, {name} prompts — {v['message']}", "err")
                for v in gates.values()
                if v["status"] in ("warn", "fail")
            ]
    for label, kinds in ((report.get("safety") or {}).get("gates") or {}).items():
        lines += [
            (f"{label} — {v['message']}", "err") for v in kinds.values() if v["status"] in ("warn", "fail")
        ]
    return lines
