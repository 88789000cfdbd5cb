"""Per-sample loss of every eval record, rendered exactly as training renders it (same template, same mask).

The records the model finds hardest are often the broken ones (wrong label,
truncated answer, another language), so the worst are listed in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sftlab.data.record import Record
from sftlab.recipe.sections.render import RenderSection
from sftlab.render import IGNORE_INDEX, RenderError, render_record
from sftlab.utils.progress import make_progress


@dataclass
class SampleLoss:
    """Mean cross-entropy over the record's trained tokens."""

    id: str
    loss: float
    tokens: int
    task: str | None = None
    text: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def per_sample_loss(
    model,
    tokenizer,
    records: Sequence[Record],
    render_cfg: RenderSection | None = None,
    *,
    batch_size: int = 8,
    description: str = "loss",
) -> tuple[list[SampleLoss], dict[str, int]]:
    """``(losses, skipped_by_reason)``: records that cannot be rendered are counted, not scored."""
    import torch

    render_cfg = render_cfg or RenderSection()
    rendered, skipped = [], {}
    for i, rec in enumerate(records):
        try:
            sample = render_record(rec, tokenizer, render_cfg)
        except RenderError as err:
            skipped[err.reason] = skipped.get(err.reason, 0) + 1
            continue
        rendered.append((rec.meta.id or f"eval-{i}", rec, sample))
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[SampleLoss | None] = [None] * len(rendered)
    order = sorted(range(len(rendered)), key=lambda i: -len(rendered[i][2].input_ids))  # little padding
    model.eval()
    with make_progress() as progress, torch.inference_mode():
        task = progress.add_task(description, total=len(rendered), info="")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            samples = [rendered[i][2] for i in chunk]
            for i, (total, n) in zip(chunk, _summed_losses(model, samples, pad_id, device), strict=True):
                rid, rec, _ = rendered[i]
                out[i] = SampleLoss(
                    id=rid, loss=total / max(n, 1), tokens=n, task=rec.meta.task, text=rec.all_text()[:500]
                )
            progress.advance(task, len(chunk))
    return [x for x in out if x is not None], skipped


def _summed_losses(model, samples, pad_id: int, device) -> list[tuple[float, int]]:
    """``(summed loss, trained tokens)`` per sample; the LM head runs only where a trained token is predicted."""
    import torch

    from sftlab.evaluate.continuations import head_on

    width = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, s in enumerate(samples):  # right padding: positions start at 0 for every row
        ids[row, : len(s)] = torch.tensor(s.input_ids)
        labels[row, : len(s)] = torch.tensor(s.labels)
        mask[row, : len(s)] = 1
    target = labels[:, 1:]
    keep = torch.zeros((len(samples), width), dtype=torch.bool)
    keep[:, :-1] = target != IGNORE_INDEX  # position p predicts token p + 1
    logits = head_on(model, keep, input_ids=ids.to(device), attention_mask=mask.to(device))
    token_loss = torch.nn.functional.cross_entropy(
        logits.float(), target[target != IGNORE_INDEX].to(logits.device), reduction="none"
    ).cpu()
    out, at = [], 0
    for n in keep.sum(-1).tolist():
        out.append((float(token_loss[at : at + n].sum()), n))
        at += n
    return out


def worst(losses: Sequence[SampleLoss], k: int) -> list[SampleLoss]:
    """The ``k`` highest-loss records, highest first."""
    return sorted(losses, key=lambda s: -s.loss)[:k]
