"""The ablation's table: every data variant on the same sets, with intervals and paired tests against curated.

Per variant: training set size and loss, exact match on the eval answers with its Wilson 95%
interval, the paired McNemar test against the curated variant on the same answers (which
questions one gets right and the other wrong), the retention benchmark with its interval and
the general-loss shift. The sentence under the table says what the numbers support — and
"no significant difference" when that is what they show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sftlab.evaluate.stats import mcnemar_two_sided, wilson_interval
from sftlab.recipe import Recipe
from sftlab.report import HtmlReport
from sftlab.utils.atomic import write_json
from sftlab.utils.progress import console


def _correct(result: dict[str, Any]) -> list[bool]:
    return [a["produced"].strip() == a["expected"].strip() for a in result.get("answers", [])]


def _train_facts(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "train" / "summary.json"
    facts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {k: facts.get(k) for k in ("steps", "train_loss_tail", "eval_loss", "runtime_s", "tokens_seen")}


def ablation_summary(report: dict[str, Any], plan, *, curated_name: str) -> dict[str, Any]:
    """The per-variant rows (and the base's) from the joint evaluation report."""
    models, primary = report["models"], report["primary_metric"]
    reference = _correct(models[curated_name]) if curated_name in models else None
    rows = []
    for label in ["base", *[v.name for v in plan]]:
        result = models[label]
        right = _correct(result)
        lo, hi = wilson_interval(sum(right), len(right))
        row: dict[str, Any] = {
            "variant": label,
            "records": None,
            "note": "the model before any training",
            primary: result["overall"].get(primary),
            "exact_match": sum(right) / len(right) if right else None,
            "exact_match_ci95": [lo, hi],
        }
        variant = next((v for v in plan if v.name == label), None)
        if variant is not None:
            row.update(records=len(variant.records), note=variant.note, **_train_facts(variant.run_dir))
        if reference is not None and label != curated_name:
            wins = sum(1 for c, o in zip(reference, right, strict=True) if c and not o)
            losses = sum(1 for c, o in zip(reference, right, strict=True) if o and not c)
            row["vs_curated"] = {
                "curated_better": wins,
                "curated_worse": losses,
                "p_value": mcnemar_two_sided(wins, losses),
            }
        verdict = (report.get("retention") or {}).get(label)
        if verdict:
            row["retention"] = {"benchmark": verdict["benchmark"], "accuracy": verdict["tuned"],
                                "ci95": verdict["tuned_ci95"], "status": verdict["status"]}  # fmt: skip
        shift = (result.get("general_loss") or {}).get("shift")
        if shift:
            row["general_loss"] = {"value": shift["tuned"], "shift": shift["shift"], "ci95": shift["ci95"]}
        rows.append(row)
    return {"primary_metric": primary, "eval_samples": report["eval_samples"], "variants": rows,
            "findings": findings(rows, curated_name)}  # fmt: skip


def findings(rows: list[dict[str, Any]], curated_name: str) -> list[str]:
    """One plain sentence per comparison with curated, saying only what the paired test supports."""
    out = []
    cur = next((r for r in rows if r["variant"] == curated_name), None)
    if cur is None or cur["exact_match"] is None:
        return out
    for row in rows:
        test = row.get("vs_curated")
        if not test or row["exact_match"] is None:
            continue
        diff = cur["exact_match"] - row["exact_match"]
        pair = f"curated {cur['exact_match']:.3f} vs {row['variant']} {row['exact_match']:.3f} exact match"
        counts = f"{test['curated_better']} answers better, {test['curated_worse']} worse, p = {test['p_value']:.2g}"
        if test["p_value"] < 0.05:
            word = "better" if diff > 0 else "worse"
            out.append(f"{pair}: curated is significantly {word} ({counts}).")
        else:
            out.append(f"{pair}: no significant difference on these {test['curated_better'] + test['curated_worse']} "
                       f"changed answers ({counts}); more eval records would be needed to tell.")  # fmt: skip
    return out


def _table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    primary = summary["primary_metric"]
    rows = []
    for r in summary["variants"]:
        lo, hi = r["exact_match_ci95"]
        ret = r.get("retention")
        gl = r.get("general_loss")
        rows.append(
            {
                "variant": r["variant"],
                "training records": "—" if r["records"] is None else r["records"],
                "steps": r.get("steps") or "—",
                primary: "n/a" if r.get(primary) is None else round(r[primary], 3),
                "exact match (95% CI)": "n/a" if r["exact_match"] is None else f"{r['exact_match']:.3f} ({lo:.2f}–{hi:.2f})",
                "vs curated (p)": f"{r['vs_curated']['p_value']:.2g}" if r.get("vs_curated") else "—",
                "retention (95% CI)": (f"{ret['accuracy']:.3f} ({ret['ci95'][0]:.2f}–{ret['ci95'][1]:.2f}), {ret['status']}"
                                       if ret else "—"),
                "general loss": f"{gl['value']:.3f} ({gl['shift']:+.3f})" if gl else "—",
                "what it is": r["note"],
            }
        )  # fmt: skip
    return rows


def write_ablation_report(out: Path, recipe: Recipe, summary: dict[str, Any], report: dict[str, Any]) -> Path:
    """``out/report.json`` (the summary) and ``out/report.html`` (the table, then the joint evaluation)."""
    from sftlab.evaluate.report import add_sections
    from sftlab.pipeline.report import _jsonl

    write_json(out / "report.json", summary)
    page = HtmlReport(
        f"sftlab ablate — {recipe.name}", f"{summary['eval_samples']} eval samples, same sets for all"
    )
    page.section("Does curation pay?")
    page.table(_table_rows(summary))
    for line in summary["findings"]:
        page.text(line, "note")
    add_sections(page, report, bad_cases=_jsonl(out / "eval" / "bad_cases.jsonl"))
    path = page.save(out / "report.html")
    _print(summary)
    console.print(f"ablation report: {path}", markup=False, highlight=False)
    return path


def _print(summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="ablation", title_justify="left")
    rows = _table_rows(summary)
    for key in [k for k in rows[0] if k != "what it is"]:
        table.add_column(key)
    for row in rows:
        table.add_row(*[str(v) for k, v in row.items() if k != "what it is"])
    console.print(table)
    for line in summary["findings"]:
        console.print(line, markup=False, highlight=False)
