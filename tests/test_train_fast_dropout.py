"""FastDropout behaves like dropout: rate p, unchanged expectation, identity in eval, gradient through the mask."""

from __future__ import annotations

import torch

from sftlab.train.fast_dropout import FastDropout, use_fast_dropout


def test_drop_rate_and_expectation_match_p():
    torch.manual_seed(0)
    x = torch.ones(1_000_003)  # not a multiple of 4: the tail of the last draw is cut off correctly
    out = FastDropout(0.1).train()(x)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002  # 1M draws: the standard error is 0.0003
    assert abs(out.mean().item() - 1.0) < 0.005
    values = out.unique()
    assert len(values) == 2 and values[0] == 0 and abs(values[1].item() - 65536 / (65536 - 6554)) < 1e-6


def test_identity_in_eval_and_at_p_zero_and_reproducible_with_the_seed():
    x = torch.randn(64, 32)
    assert torch.equal(FastDropout(0.3).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    torch.manual_seed(5)
    a = FastDropout(0.3).train()(x)
    torch.manual_seed(5)
    assert torch.equal(FastDropout(0.3).train()(x), a)


def test_gradient_flows_through_the_kept_elements_only():
    x = torch.randn(128, 16, requires_grad=True)
    out = FastDropout(0.5).train()(x)
    out.sum().backward()
    kept = out != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 2.0))
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))


def test_lora_dropouts_of_a_peft_model_are_swapped(tiny_model):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model, LoraConfig(r=4, lora_dropout=0.1, target_modules="all-linear"))
    n_lora = sum(1 for m in model.modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    assert use_fast_dropout(model) == n_lora > 0
    assert all(
        type(m.lora_dropout["default"]) is FastDropout for m in model.modules() if hasattr(m, "lora_dropout")
    )
