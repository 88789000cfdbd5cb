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
    out: list[SampleLoss] = []
    model.eval()
    with make_progress() as progress, torch.inference_mode():
        task = progress.add_task(description, total=len(rendered), info="")
        for start in range(0, len(rendered), batch_size):
            chunk = rendered[start : start + batch_size]
            width = max(len(s.input_ids) for _, _, s in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            labels = torch.full((len(chunk), width), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (_, _, s) in enumerate(chunk):  # right padding: positions start at 0 for every row
                ids[row, : len(s)] = torch.tensor(s.input_ids)
                labels[row, : len(s)] = torch.tensor(s.labels)
                mask[row, : len(s)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logits = logits[:, logits.size(1) - width :]  # prompt tuning prepends its virtual tokens
            shifted = labels[:, 1:].to(device)
            token_loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                shifted.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="none",
            ).view(shifted.shape)
            trained = (shifted != IGNORE_INDEX).sum(-1)
            for row, (rid, rec, _) in enumerate(chunk):
                n = int(trained[row])
                loss = float(token_loss[row].sum() / max(n, 1))
                out.append(
                    SampleLoss(id=rid, loss=loss, tokens=n, task=rec.meta.task, text=rec.all_text()[:500])
                )
            progress.advance(task, len(chunk))
    return out, skipped


def worst(losses: Sequence[SampleLoss], k: int) -> list[SampleLoss]:
    """The ``k`` highest-loss records, highest first."""
    return sorted(losses, key=lambda s: -s.loss)[:k]
