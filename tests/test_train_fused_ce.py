"""The trained-positions, chunked cross-entropy equals the plain full-logits loss in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sftlab.train.fused_ce import HeadSelector, linear_cross_entropy, token_losses, trained_positions
from sftlab.train.loss import IGNORE_INDEX, token_loss_sum


def _reference(hidden, weight, bias, targets, token_weights):
    logits = hidden @ weight.t() + (bias if bias is not None else 0)
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    return (ce * token_weights).sum() if token_weights is not None else ce.sum()


@pytest.mark.parametrize("with_bias,weighted,train_weight", [(True, True, True), (False, False, False)])
def test_linear_cross_entropy_matches_reference_values_and_gradients(with_bias, weighted, train_weight):
    gen = torch.Generator().manual_seed(0)
    n, h, v = 37, 8, 50
    hidden = torch.randn(n, h, generator=gen, requires_grad=True)
    weight = torch.randn(v, h, generator=gen, requires_grad=train_weight)
    bias = torch.randn(v, generator=gen, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,), generator=gen)
    tw = torch.rand(n, generator=gen) * 2 if weighted else None

    ours = linear_cross_entropy(hidden, weight, targets, bias=bias, token_weights=tw, chunk=8)
    (ours * 3.0).backward()  # a non-unit upstream gradient must scale every stored gradient
    got = [t.grad.clone() for t in (hidden, weight, bias) if t is not None and t.requires_grad]
    for t in (hidden, weight, bias):
        if t is not None:
            t.grad = None
    ref = _reference(hidden, weight, bias, targets, tw)
    (ref * 3.0).backward()
    want = [t.grad for t in (hidden, weight, bias) if t is not None and t.requires_grad]

    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)
    assert len(got) == len(want) == (1 + train_weight + with_bias)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-5)
    per_token = token_losses(hidden.detach(), weight.detach(), targets, bias=bias, chunk=5)
    assert torch.allclose(
        per_token.sum() if tw is None else (per_token * tw).sum(), ref, rtol=1e-5, atol=1e-5
    )


def test_trained_positions_pick_the_predecessor_of_every_trained_label():
    labels = torch.tensor([[1, IGNORE_INDEX, 3, 4], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 9]])
    keep, targets = trained_positions(labels)
    assert keep.tolist() == [[False, True, True, False], [False, False, True, False]]
    assert targets.tolist() == [3, 4, 9]


def _batch(tok):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, tok.vocab_size - 1, (3, 12), generator=gen)
    labels = ids.clone()
    labels[0, :7] = IGNORE_INDEX
    labels[1, :2] = IGNORE_INDEX
    labels[2, :] = IGNORE_INDEX
    labels[2, 10] = ids[2, 10]
    weights = torch.rand(3, 12, generator=gen) + 0.5
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "loss_weights": weights,
    }


@pytest.mark.parametrize("capture", [True, False])
def test_trainer_loss_on_trained_positions_equals_full_logits_loss(tmp_path, capture):
    """The SftTrainer's loss and gradients equal the full-vocabulary reference on a real tiny model."""
    from transformers import TrainingArguments

    from sftlab.testing import embedded_tokenizer, tiny_llama
    from sftlab.train.trainer import SftTrainer

    tok = embedded_tokenizer()
    model = tiny_llama(tok)
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False
    )
    trainer = SftTrainer(model=model, args=args)
    assert trainer._head_selector(model).capture  # a Llama's logits are exactly lm_head(hidden)
    trainer._selector = HeadSelector(model, capture=capture)
    batch = _batch(tok)

    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    total, count = token_loss_sum(logits, batch["labels"], batch["loss_weights"])
    ref = total / count
    ref.backward()
    assert torch.allclose(loss, ref, rtol=1e-5, atol=1e-6)
    assert set(ours) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        assert torch.allclose(ours[name], p.grad, rtol=1e-4, atol=1e-6), name
    assert trainer._selector.keep is None  # the hook is gone after the forward


def test_no_trained_token_gives_a_zero_loss_that_still_backpropagates():
    hidden = torch.randn(0, 4, requires_grad=True)
    weight = torch.randn(6, 4, requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.detach().item() == 0.0 and weight.grad is not None and float(weight.grad.abs().sum()) == 0.0
