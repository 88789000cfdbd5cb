"""``run_synth``: the entry point that reads top-down — set up, generate, write, summarise.

Output folder (``synth.output_dir``, default ``<output_dir>/synth``)::

    cache.sqlite         every teacher answer, committed as it arrives (resume after a crash)
    synth.<ext>          kept records, with meta.provenance (teacher, templates, seed, parent)
    rejects.jsonl        every rejected candidate with stage, reason and the teacher's raw text
    summary.json         counts per stage and reason, tokens, cost — written last

Records, rejects and summary are written atomically at the end, so a run that
stops early (endpoint down, SIGKILL) leaves no half-written outputs; the cache
makes the next run skip every request already answered. A run in which the
teacher answered no request at all (every one failed after its retries) is an
error too, not an empty success.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sftlab.data.formats import get_format
from sftlab.data.io import write_records
from sftlab.recipe.schema import Recipe
from sftlab.synth import doc_qa, evol_instruct, self_instruct
from sftlab.synth.cache import RequestCache
from sftlab.synth.context import SynthContext
from sftlab.synth.engine import Teacher, TeacherError
from sftlab.synth.templates import load_templates
from sftlab.utils.atomic import write_json, write_jsonl

PIPELINES = {
    "self_instruct": self_instruct.run,
    "evol_instruct": evol_instruct.run,
    "doc_qa": doc_qa.run,
}


def output_dir(recipe: Recipe) -> Path:
    """Where ``synth`` writes for this recipe."""
    return Path(recipe.synth.output_dir or Path(recipe.output_dir) / "synth")


def run_synth(recipe: Recipe) -> dict[str, Any]:
    """Run the recipe's synth pipeline against its teacher; return the summary (also in summary.json)."""
    cfg = recipe.synth
    out = output_dir(recipe)
    templates = load_templates(cfg.prompts)  # bad overrides fail before any request is sent
    get_format(cfg.format)
    records_path = out / f"synth{_extension(cfg.format)}"
    started = time.monotonic()
    cache = RequestCache(out / "cache.sqlite")
    try:
        teacher = Teacher(cfg.teacher, cache)
        ctx = SynthContext(config=cfg, teacher=teacher, templates=templates, seed=recipe.seed)
        PIPELINES[cfg.pipeline](ctx)
    finally:
        cache.close()
    _check_answered(teacher)
    written = write_records(ctx.tally.kept, records_path, format=cfg.format)
    write_jsonl(out / "rejects.jsonl", ctx.tally.rejects)
    summary = {
        "pipeline": cfg.pipeline,
        "teacher": {"base_url": cfg.teacher.base_url, "model": cfg.teacher.model},
        "seed": recipe.seed,
        "output": str(records_path),
        "format": cfg.format,
        "written": written.written,
        "not_expressible_in_format": dict(written.skipped),
        "rejects": str(out / "rejects.jsonl"),
        **ctx.tally.to_dict(),
        "usage": teacher.usage.to_dict(),
        "seconds": round(time.monotonic() - started, 2),
    }
    write_json(out / "summary.json", summary)
    return summary


def _check_answered(teacher: Teacher) -> None:
    """A run in which the teacher answered nothing is a failed run (one line, exit 1), not an empty success."""
    usage = teacher.usage
    if usage.requests_sent or usage.cache_hits or not usage.failures:
        return
    failed = ", ".join(f"{reason} × {n}" for reason, n in usage.failures.most_common())
    raise TeacherError(
        f"the teacher at {teacher.config.base_url} answered none of {sum(usage.failures.values())} requests "
        f"({failed}, each after {teacher.config.max_retries} retries where retryable); "
        "check the server's log and synth.teacher.base_url and model"
    )


def _extension(fmt: str) -> str:
    return ".sftlab.jsonl" if fmt == "sftlab" else f".{fmt}.jsonl"
