"""The run report: one self-contained HTML page (and JSON) built from the stages' own output files.

Nothing is recomputed here: each section reads what its stage wrote
(curation/report.json, preview/preview.json, train/summary.json and
metrics.jsonl, eval/report.json and bad_cases.jsonl).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from sftlab.pipeline.headline import headline_rows
from sftlab.recipe import Recipe
from sftlab.report import HtmlReport
from sftlab.utils.atomic import write_json


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def collect(run_dir: Path) -> dict[str, Any]:
    """Everything the stages wrote, in one dict (the body of report.json)."""
    evaluation = _load(run_dir / "eval" / "report.json")
    if evaluation:
        for result in evaluation.get("models", {}).values():
            result.pop("answers", None)  # in bad_cases.jsonl; keeps report.json readable
    preview = _load(run_dir / "preview" / "preview.json")
    if preview:
        preview = {k: v for k, v in preview.items() if k != "samples"}
    return {
        "curation": _load(run_dir / "curation" / "report.json"),
        "preview": preview,
        "training": _load(run_dir / "train" / "summary.json"),
        "evaluation": evaluation,
    }


def headline(data: dict[str, Any]) -> dict[str, Any]:
    """The numbers a user looks at first (see :mod:`sftlab.pipeline.headline`), as ``{what: value}``."""
    return {what: value for what, value, _ in headline_rows(data)}


def write_run_report(run_dir: Path, recipe: Recipe) -> Path:
    """Write ``run_dir/report.html`` and ``report.json``; returns the HTML path."""
    data = collect(run_dir)
    data["name"] = recipe.name
    data["recipe"] = recipe.model_dump(mode="json")
    rows = headline_rows(data)
    data["headline"] = {what: value for what, value, _ in rows}
    data["headline_rows"] = [list(row) for row in rows]
    write_json(run_dir / "report.json", data)
    page = HtmlReport(
        f"sftlab run — {recipe.name}",
        f"model {recipe.model.name} · method {recipe.training.method} · run folder {run_dir}",
    )
    page.section("Summary").cards(data["headline"])
    _curation(page, data.get("curation"), run_dir)
    _preview(page, run_dir)
    _training(page, data.get("training"), run_dir)
    _evaluation(page, run_dir)
    return page.save(run_dir / "report.html")


def _curation(page: HtmlReport, cur: dict[str, Any] | None, run_dir: Path) -> None:
    if not cur:
        return
    page.section("Curation")
    ok = cur["records_in"] + cur.get("added", 0) == cur["kept"] + cur["rejected"]
    page.text(
        f"records in {cur['records_in']} = kept {cur['kept']} + rejected {cur['rejected']}"
        + (" (accounting holds)" if ok else " (ACCOUNTING MISMATCH)"),
        "ok" if ok else "err",
    )
    page.table(
        [
            {
                "step": s["step"],
                "in": s["in"],
                "out": s["out"],
                "rejected": s["rejected"],
                "by reason": ", ".join(f"{k} {v}" for k, v in s["rejected_by_reason"].items()),
            }
            for s in cur["steps"]
        ]
    )
    for reason, examples in _examples(cur).items():
        page.heading(f"example rejected for {reason}")
        page.pre(examples[0]["text"])
    page.text(
        f"full curation report: {run_dir / 'curation' / 'report.html'}; rejects: {run_dir / 'curation' / 'rejects.jsonl'}"
    )


def _examples(cur: dict[str, Any]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for step in cur["steps"]:
        for reason, examples in step.get("examples", {}).items():
            if examples and reason not in out:
                out[reason] = examples
    return out


def _preview(page: HtmlReport, run_dir: Path) -> None:
    preview = _load(run_dir / "preview" / "preview.json")
    if not preview:
        return
    from sftlab.render.preview import problems, spans_html

    page.section("Mask preview")
    page.table(
        [
            {
                "source": name,
                "records": s["records"],
                "tokens": s["tokens"],
                "trained share": round(s["trained_token_share"], 3),
                "no trained token": s["no_trained_tokens"],
                "EOS trained": "yes" if s["eot_trained"] else "NO",
                "prompt is prefix": "yes" if s["prompt_is_prefix"] else "NO",
                "truncated": s["truncated"],
                "dropped too long": s["dropped_too_long"],
            }
            for name, s in preview["sources"].items()
        ]
    )
    found = problems(preview)
    page.text(
        "; ".join(found)
        if found
        else "every check passed: end-of-turn trained, inference prompt is a prefix",
        "err" if found else "ok",
    )
    for sample in preview["samples"][:2]:
        page.heading(
            f"{sample['id']} ({sample['trained']} of {sample['tokens']} tokens trained, highlighted)"
        )
        page.raw(spans_html([tuple(s) for s in sample["spans"]]))


def _training(page: HtmlReport, train: dict[str, Any] | None, run_dir: Path) -> None:
    if not train:
        return
    page.section("Training")
    rows = [
        {"key": k, "value": v if not isinstance(v, dict | list) else json.dumps(v)[:200]}
        for k, v in train.items()
        if not isinstance(v, dict | list) or k in ("best_checkpoint",)
    ]
    page.table(rows)
    png = run_dir / "train" / "loss_curve.png"
    if png.is_file():
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        page.raw(
            f'<figure><img src="{uri}" alt="loss curves"><figcaption>train and eval loss</figcaption></figure>'
        )


def _evaluation(page: HtmlReport, run_dir: Path) -> None:
    report = _load(run_dir / "eval" / "report.json")
    if not report:
        return
    from sftlab.evaluate.report import add_sections

    add_sections(page, report, bad_cases=_jsonl(run_dir / "eval" / "bad_cases.jsonl"))
