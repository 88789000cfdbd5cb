"""A cheap, sensitive retention signal: token-mean loss on held-out general instructions, before and after.

Forgetting shows in the loss long before it flips multiple-choice answers: every token of
every answer counts, not one pick per question, and the same records are scored by both
models, so the paired shift has a narrow interval. It is a signal beside the gate, not the
gate: a fine-tuned model is *meant* to move, and a small rise can be the price of its task.

The default set (``data/general_heldout.jsonl``, 123 short instructions and answers written
for sftlab) is never trained on; ``evaluation.retention.general_loss.path`` names your own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab.data.record import Record
from sftlab.evaluate.loss import SampleLoss, per_sample_loss
from sftlab.evaluate.stats import paired_ratio_shift, ratio_interval

EMBEDDED_GENERAL = Path(__file__).parent / "data" / "general_heldout.jsonl"


def load_general_records(path: str | None, limit: int = 0) -> list[Record]:
    """The held-out general records: ``path`` (any format sftlab reads), else the embedded set; first ``limit``."""
    from sftlab.data.io import read_records
    from sftlab.errors import DataError

    source = Path(path) if path else EMBEDDED_GENERAL
    if not source.exists():
        raise DataError(f"evaluation.retention.general_loss.path: file not found: {source}")
    records = list(read_records(source, limit=limit or None))
    if not records:
        raise DataError(f"evaluation.retention.general_loss.path: {source} holds no records")
    return records


def general_loss(
    model, tokenizer, records: Sequence[Record], render_cfg=None, *, batch_size: int = 8
) -> dict:
    """Token-mean loss over the trained (answer) tokens of ``records``, with its 95% interval."""
    losses, skipped = per_sample_loss(
        model, tokenizer, records, render_cfg, batch_size=batch_size, description="general loss"
    )
    est, lo, hi = ratio_interval([x.loss * x.tokens for x in losses], [x.tokens for x in losses])
    return {
        "token_mean": est,
        "ci95": [lo, hi],
        "records": len(losses),
        "tokens": sum(x.tokens for x in losses),
        "skipped": skipped,
        "_per_record": {x.id: x for x in losses},
    }


def loss_shift(base: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The paired change of token-mean loss from ``base`` to ``tuned`` (records both scored), and what it says."""
    a: dict[str, SampleLoss] = base["_per_record"]
    b: dict[str, SampleLoss] = tuned["_per_record"]
    ids = [i for i in a if i in b]
    shift, lo, hi = paired_ratio_shift(
        [(a[i].loss * a[i].tokens, a[i].tokens) for i in ids],
        [(b[i].loss * b[i].tokens, b[i].tokens) for i in ids],
    )
    if lo > 0:
        verdict = "rose"
    elif hi < 0:
        verdict = "fell"
    else:
        verdict = "no clear change"
    message = (
        f"loss on {len(ids)} held-out general instructions {base['token_mean']:.3f} → {tuned['token_mean']:.3f} "
        f"({shift:+.3f}, 95% CI {lo:+.3f} to {hi:+.3f}): {verdict}"
    )
    return {
        "base": base["token_mean"],
        "tuned": tuned["token_mean"],
        "shift": shift,
        "ci95": [lo, hi],
        "records": len(ids),
        "verdict": verdict,
        "message": message,
    }


def public(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the per-record losses (kept in memory for pairing, not written to report.json)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}
