"""Padding-free packed rows, the Liger loss and the fused optimizer: exact inputs on CPU, numbers on a GPU.

On a CPU the varlen batch is checked token by token, and a reference varlen attention (plain SDPA
per ``cu_seq_lens`` segment, registered with transformers as flash-attention's stand-in) shows that
the model sees each sample alone. The ``gpu``-marked tests run the real kernels (flash-attn varlen,
FlexAttention, Liger, fused AdamW) in ``bench/gpu_check.sh``.
"""

from __future__ import annotations

import pytest
import torch

from sftlab.render import IGNORE_INDEX, PackedCollator, PaddingCollator
from test_render_pack import MAX_LEN, loss_and_grads, make_samples

REFERENCE = "sftlab_varlen_reference"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_varlen_inputs_are_exact_for_a_batch_of_packed_rows(tokenizer):
    samples = make_samples(5, len(tokenizer), seed=7)
    rows = [{"pack": samples[:2]}, {"pack": samples[2:]}]  # two epoch-packed rows -> one padding-free row
    lengths = [len(s["input_ids"]) for s in samples]
    batch = PackedCollator(MAX_LEN, tokenizer.pad_token_id, attention="flash")(rows)
    total = sum(lengths)
    assert batch["input_ids"].shape == (1, total) and "attention_mask" not in batch
    assert batch["input_ids"][0].tolist() == [t for s in samples for t in s["input_ids"]]
    assert batch["position_ids"][0].tolist() == [p for n in lengths for p in range(n)]
    bounds = [0]
    for n in lengths:
        bounds.append(bounds[-1] + n)
    assert batch["cu_seq_lens_q"].tolist() == batch["cu_seq_lens_k"].tolist() == bounds
    assert batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_q"] == batch["max_length_k"] == max(lengths)
    expected_labels = [IGNORE_INDEX if i == 0 else x for s in samples for i, x in enumerate(s["labels"])]
    assert batch["labels"][0].tolist() == expected_labels  # a sample's first token is never a target
    flex = PackedCollator(MAX_LEN, tokenizer.pad_token_id, attention="flex")(rows)
    assert set(flex) == {"input_ids", "labels", "position_ids"}
    assert torch.equal(flex["position_ids"], batch["position_ids"])


def _reference_varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    """What flash-attn's varlen kernel computes: causal attention inside each ``cu_seq_lens`` segment only."""
    assert attention_mask is None and query.shape[0] == 1, "varlen rows carry no mask and are one row"
    cu = kw["cu_seq_lens_q"].tolist()
    assert kw["max_length_q"] == max(b - a for a, b in zip(cu, cu[1:], strict=False))
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], is_causal=True, scale=scaling
        )
        for a, b in zip(cu, cu[1:], strict=False)
    ]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


@pytest.fixture
def varlen_model(tiny_model):
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(REFERENCE, _reference_varlen_attention)
    AttentionMaskInterface.register(REFERENCE, lambda *args, **kwargs: None)
    tiny_model.set_attn_implementation(REFERENCE)
    return tiny_model


def test_varlen_packed_logits_loss_and_grads_equal_unpacked_on_cpu(tokenizer, varlen_model, tiny_model):
    samples = make_samples(6, len(tokenizer), seed=8)
    batch = PackedCollator(MAX_LEN, tokenizer.pad_token_id, attention="flash")(samples)
    keys = ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
    with torch.no_grad():
        packed = varlen_model(**{k: batch[k] for k in keys}, use_cache=False).logits[0]
    varlen_model.set_attn_implementation("sdpa")
    at = 0
    for s in samples:
        n = len(s["input_ids"])
        with torch.no_grad():
            alone = tiny_model(input_ids=torch.tensor([s["input_ids"]])).logits[0]
        torch.testing.assert_close(packed[at : at + n], alone, atol=1e-5, rtol=1e-5)
        at += n
    loss_a, grads_a = loss_and_grads(tiny_model, PaddingCollator(tokenizer.pad_token_id)(samples))
    tiny_model.set_attn_implementation(REFERENCE)
    tiny_model.zero_grad()
    from sftlab.render import token_mean_loss

    logits = tiny_model(**{k: batch[k] for k in keys}, use_cache=False).logits
    loss_b = token_mean_loss(logits, batch["labels"])
    loss_b.backward()
    torch.testing.assert_close(loss_a, loss_b.detach(), atol=1e-5, rtol=1e-5)
    for name, p in tiny_model.named_parameters():
        torch.testing.assert_close(grads_a[name], p.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_flex_packed_logits_equal_each_sample_alone_on_cpu(tokenizer, tiny_model):
    """FlexAttention's block mask from restarting position ids (compiles on CPU: about a minute)."""
    samples = make_samples(5, len(tokenizer), seed=9)
    batch = PackedCollator(MAX_LEN, tokenizer.pad_token_id, attention="flex")(samples)
    tiny_model.set_attn_implementation("flex_attention")
    with torch.no_grad():
        packed = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False)
    tiny_model.set_attn_implementation("sdpa")
    at = 0
    for s in samples:
        n = len(s["input_ids"])
        with torch.no_grad():
            alone = tiny_model(input_ids=torch.tensor([s["input_ids"]])).logits[0]
        torch.testing.assert_close(packed.logits[0, at : at + n], alone, atol=1e-5, rtol=1e-5)
        at += n


def test_trainer_calls_the_liger_loss_only_when_chosen_and_unweighted(monkeypatch, tokenizer, tiny_model):
    import sftlab.train.trainer as trainer_module
    from sftlab.train.fused_ce import linear_cross_entropy

    calls = []

    def spy(hidden, weight, targets, *, bias=None):
        calls.append(hidden.shape[0])
        return linear_cross_entropy(hidden, weight, targets, bias=bias)

    monkeypatch.setattr(trainer_module, "liger_linear_cross_entropy", spy)
    trainer = trainer_module.SftTrainer.__new__(trainer_module.SftTrainer)
    trainer._selector, trainer.is_fsdp_enabled, trainer.is_deepspeed_enabled = None, False, False
    batch = PaddingCollator(tokenizer.pad_token_id)(make_samples(3, len(tokenizer), seed=10))
    labels = batch.pop("labels")
    trainer.loss_kernel = "none"
    ours, n = trainer._trained_token_loss(tiny_model, batch, labels, None)
    assert calls == []
    trainer.loss_kernel = "liger"
    liger, _ = trainer._trained_token_loss(tiny_model, batch, labels, None)
    assert calls == [int(n)] and torch.allclose(ours, liger)
    trainer._trained_token_loss(tiny_model, batch, labels, torch.ones(labels.shape))  # weighted: ours
    assert len(calls) == 1


def test_prepare_model_turns_non_reentrant_checkpointing_on(tiny_model):
    from sftlab.recipe.sections.training import TrainingSection
    from sftlab.train.methods import prepare_model

    model = prepare_model(tiny_model, TrainingSection(method="full"), gradient_checkpointing=True)
    assert model.is_gradient_checkpointing and model.config.use_cache is False


# ---- on a GPU (bench/gpu_check.sh) ----------------------------------------------------------------


def _gpu_equivalence(tokenizer, attention: str, mode: str):
    from sftlab.testing import tiny_llama

    model = tiny_llama(tokenizer, hidden_size=64, intermediate_size=128, heads=4, kv_heads=2)
    model = model.to("cuda", torch.bfloat16)
    samples = make_samples(8, len(tokenizer), seed=11)
    padded = {k: v.cuda() for k, v in PaddingCollator(tokenizer.pad_token_id)(samples).items()}
    model.set_attn_implementation("sdpa")
    loss_a, grads_a = loss_and_grads(model, padded)
    batch = PackedCollator(MAX_LEN, tokenizer.pad_token_id, attention=mode)(samples)
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    assert "attention_mask" not in batch  # never a dense mask on the GPU
    model.set_attn_implementation(attention)
    model.zero_grad()
    from sftlab.render import token_mean_loss

    inputs = {k: v for k, v in batch.items() if k not in ("labels", "loss_weights")}
    loss_b = token_mean_loss(model(**inputs, use_cache=False).logits, batch["labels"])
    loss_b.backward()
    torch.testing.assert_close(loss_a.float(), loss_b.detach().float(), atol=2e-2, rtol=2e-2)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads_a[name].float(), p.grad.float(), atol=5e-2, rtol=5e-2)


@pytest.mark.gpu
@cuda
def test_gpu_flash_varlen_packed_equals_unpacked(tokenizer):
    pytest.importorskip("flash_attn")
    _gpu_equivalence(tokenizer, "flash_attention_2", "flash")


@pytest.mark.gpu
@cuda
def test_gpu_flex_packed_equals_unpacked(tokenizer):
    _gpu_equivalence(tokenizer, "flex_attention", "flex")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_liger_loss_equals_reference_loss(dtype):
    pytest.importorskip("liger_kernel")
    from sftlab.train.fused_ce import linear_cross_entropy
    from sftlab.train.kernels import liger_linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(300, 64, device="cuda", dtype=dtype, requires_grad=True)
    weight = torch.randn(5000, 64, device="cuda", dtype=dtype, requires_grad=True)
    targets = torch.randint(0, 5000, (300,), device="cuda")
    ours = linear_cross_entropy(hidden, weight, targets)
    g_ours = torch.autograd.grad(ours, (hidden, weight))
    liger = liger_linear_cross_entropy(hidden, weight, targets)
    g_liger = torch.autograd.grad(liger, (hidden, weight))
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(liger, ours, atol=tol * 300, rtol=tol)
    for a, b in zip(g_ours, g_liger, strict=True):
        torch.testing.assert_close(a.float(), b.float(), atol=tol, rtol=tol)


@pytest.mark.gpu
@cuda
def test_gpu_fused_adamw_step_equals_unfused(tiny_model):
    from sftlab.estimate.measure import build_optimizer

    model = tiny_model.cuda()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    results = {}
    for name in ("adamw_torch", "adamw_torch_fused"):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(start[n])
        opt = build_optimizer(model, name, lr=1e-3)
        model(
            input_ids=torch.arange(1, 17, device="cuda")[None],
            labels=torch.arange(1, 17, device="cuda")[None],
        ).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        results[name] = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert any(not torch.equal(start[n], results["adamw_torch_fused"][n]) for n in start)
    for n in start:
        torch.testing.assert_close(
            results["adamw_torch"][n], results["adamw_torch_fused"][n], atol=1e-6, rtol=1e-5
        )
