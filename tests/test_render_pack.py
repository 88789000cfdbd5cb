"""Packing keeps every token, never lets samples see each other, and leaves loss and gradients unchanged."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sftlab.render import (
    IGNORE_INDEX,
    PackedCollator,
    PaddingCollator,
    count_trained,
    pack_samples,
    token_mean_loss,
)

MAX_LEN = 64


@given(st.lists(st.integers(1, 50), min_size=0, max_size=60), st.integers(50, 80))
@settings(max_examples=60, deadline=None)
def test_pack_samples_keeps_every_sample_once_within_capacity(lengths, max_length):
    bins = pack_samples(lengths, max_length)
    flat = sorted(i for b in bins for i in b)
    assert flat == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= max_length for b in bins)
    # best fit decreasing never needs more than ~11/9 of the optimum; a simple lower bound check
    assert len(bins) <= max(1, 2 * -(-sum(lengths) // max_length))


def test_pack_samples_rejects_oversized():
    from sftlab.errors import SftlabError

    with pytest.raises(SftlabError, match="max_length=4"):
        pack_samples([3, 5], 4)


def make_samples(n: int, vocab: int, seed: int = 0, weighted: bool = False) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(4, 28)
        ids = [rng.randrange(vocab) for _ in range(length)]
        prompt = rng.randint(1, length - 2)
        labels = [IGNORE_INDEX] * prompt + ids[prompt:]
        sample = {"input_ids": ids, "labels": labels}
        if weighted:
            sample["weights"] = [0.0] * prompt + [rng.choice([0.5, 1.0, 2.0])] * (length - prompt)
        out.append(sample)
    return out


def test_packed_collator_keeps_every_token(tokenizer):
    samples = make_samples(10, len(tokenizer))
    batch = PackedCollator(MAX_LEN, tokenizer.pad_token_id)(samples)
    ids, pos, labels = batch["input_ids"], batch["position_ids"], batch["labels"]
    found = []
    for r in range(ids.shape[0]):
        starts = (pos[r] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
        for a, b in zip(starts, starts[1:], strict=False):
            found.append(ids[r, a:b].tolist())
            assert labels[r, a] == IGNORE_INDEX  # the first token of a sample is never a target
    # every sample appears once, intact; whatever is left is padding (which restarts at 0 too)
    for s in samples:
        found.remove(s["input_ids"])
    assert all(set(block) == {tokenizer.pad_token_id} for block in found)
    assert sum(len(s["input_ids"]) for s in samples) + sum(map(len, found)) == ids.numel()
    mask = batch["attention_mask"]
    assert mask.dtype == torch.bool and mask.shape == (ids.shape[0], 1, ids.shape[1], ids.shape[1])


def alone_logits(model, sample):
    with torch.no_grad():
        return model(input_ids=torch.tensor([sample["input_ids"]])).logits[0]


@pytest.mark.parametrize("attention", ["sdpa", "eager", "position_ids_only"])
def test_packed_logits_equal_each_sample_alone(tokenizer, tiny_model, attention):
    model = tiny_model.eval()
    model.set_attn_implementation("eager" if attention == "eager" else "sdpa")
    samples = make_samples(7, len(tokenizer), seed=1)
    collator = PackedCollator(
        MAX_LEN, tokenizer.pad_token_id, attention="eager" if attention == "eager" else "sdpa"
    )
    batch = collator(samples)
    rows = collator.rows(samples)
    kwargs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    if attention != "position_ids_only":
        kwargs["attention_mask"] = batch["attention_mask"]
    else:
        # transformers 5.x derives a packed mask from restarting position ids only when there
        # is no attention mask AND no KV cache; with the default use_cache=True it silently
        # attends across samples. That is why PackedCollator always sends an explicit mask.
        kwargs["use_cache"] = False
    with torch.no_grad():
        packed = model(**kwargs).logits
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = len(samples[i]["input_ids"])
            torch.testing.assert_close(
                packed[r, at : at + n], alone_logits(model, samples[i]), atol=1e-5, rtol=1e-5
            )
            at += n


def test_packing_without_separation_would_differ(tokenizer, tiny_model):
    """The equivalence test can fail: a plain causal mask over a packed row changes the logits."""
    samples = make_samples(4, len(tokenizer), seed=2)
    collator = PackedCollator(MAX_LEN, tokenizer.pad_token_id)
    batch = collator(samples)
    row = collator.rows(samples)[0]
    assert len(row) > 1
    with torch.no_grad():
        leaky = tiny_model(input_ids=batch["input_ids"][:1]).logits[0]
    first = len(samples[row[0]]["input_ids"])
    second = samples[row[1]]
    assert not torch.allclose(
        leaky[first : first + len(second["input_ids"])], alone_logits(tiny_model, second), atol=1e-3
    )


def loss_and_grads(model, batch, num_items=None):
    model.zero_grad()
    kwargs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    logits = model(**kwargs).logits
    loss = token_mean_loss(logits, batch["labels"], batch.get("loss_weights"), num_items)
    loss.backward()
    return loss.detach(), {
        n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize("weighted", [False, True])
def test_packed_loss_and_gradients_equal_unpacked(tokenizer, tiny_model, weighted):
    samples = make_samples(8, len(tokenizer), seed=3, weighted=weighted)
    padded = PaddingCollator(tokenizer.pad_token_id)(samples)
    packed = PackedCollator(MAX_LEN, tokenizer.pad_token_id)(samples)
    assert packed["input_ids"].shape[0] < len(samples)
    loss_a, grads_a = loss_and_grads(tiny_model, padded)
    loss_b, grads_b = loss_and_grads(tiny_model, packed)
    torch.testing.assert_close(loss_a, loss_b, atol=1e-5, rtol=1e-5)
    for name, g in grads_a.items():
        torch.testing.assert_close(g, grads_b[name], atol=1e-5, rtol=1e-5)


def test_trained_token_count_is_the_same_packed_or_padded(tokenizer):
    samples = make_samples(8, len(tokenizer), seed=4)
    padded = PaddingCollator(tokenizer.pad_token_id)(samples)
    packed = PackedCollator(MAX_LEN, tokenizer.pad_token_id)(samples)
    expected = sum(sum(x != IGNORE_INDEX for x in s["labels"][1:]) for s in samples)
    assert count_trained(padded["labels"]) == expected == int((packed["labels"] != IGNORE_INDEX).sum())


def test_batch_of_8_equals_8_accumulated_micro_batches(tokenizer, tiny_model):
    samples = make_samples(8, len(tokenizer), seed=5)
    collate = PaddingCollator(tokenizer.pad_token_id)
    loss_full, grads_full = loss_and_grads(tiny_model, collate(samples))
    micro = [collate([s]) for s in samples]
    num_items = sum(count_trained(b["labels"]) for b in micro)
    tiny_model.zero_grad()
    total = torch.zeros(())
    for b in micro:
        logits = tiny_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        loss = token_mean_loss(logits, b["labels"], num_items=num_items)
        loss.backward()  # gradients accumulate across micro-batches
        total += loss.detach()
    torch.testing.assert_close(total, loss_full, atol=1e-5, rtol=1e-5)
    for name, p in tiny_model.named_parameters():
        torch.testing.assert_close(p.grad, grads_full[name], atol=1e-5, rtol=1e-5)
    # a per-micro-batch mean (the classic bug) gives a different loss
    naive = sum(
        token_mean_loss(tiny_model(input_ids=b["input_ids"]).logits, b["labels"]).detach() for b in micro
    ) / len(micro)
    assert not torch.allclose(naive, loss_full, atol=1e-4)


def test_flash_mode_is_padding_free(tokenizer):
    samples = make_samples(5, len(tokenizer), seed=6)
    batch = PackedCollator(MAX_LEN, tokenizer.pad_token_id, attention="flash")(samples)
    lengths = [len(s["input_ids"]) for s in samples]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert "attention_mask" not in batch
    assert batch["cu_seq_lens_q"].tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    assert batch["max_length_q"] == max(lengths)


def test_padding_collator_labels_come_from_mask_not_pad(tokenizer):
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos
    samples = [
        {"input_ids": [1, 2, eos], "labels": [IGNORE_INDEX, 2, eos]},
        {"input_ids": [3, 4, 5, 6, eos], "labels": [IGNORE_INDEX] * 3 + [6, eos]},
    ]
    batch = PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of=8)(samples)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 2, eos] + [IGNORE_INDEX] * 5
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_epoch_packed_rows_hold_every_planned_sample_once_and_collate_row_by_row(tokenizer):
    """Epoch-level packing: one dataset item is one row; repeats in the plan are packed as often as planned."""
    from sftlab.train.data import PackedDataset

    samples = make_samples(30, len(tokenizer), seed=3)
    plan = list(range(30)) + [0, 1, 2]  # a mixing plan may repeat samples
    ds = PackedDataset(samples, plan, MAX_LEN)
    packed = sorted(tuple(s["input_ids"]) for i in range(len(ds)) for s in ds[i]["pack"])
    assert packed == sorted(tuple(samples[i]["input_ids"]) for i in plan)
    assert all(sum(len(s["input_ids"]) for s in ds[i]["pack"]) <= MAX_LEN for i in range(len(ds)))
    assert len(ds) < len(plan) / 2  # rows, not samples: the batch size now counts rows
    assert "full on average" in ds.describe()

    batch = PackedCollator(MAX_LEN, tokenizer.pad_token_id)([ds[0], ds[1]])
    assert batch["input_ids"].shape[0] == 2
    for r in range(2):
        row = ds[r]["pack"]
        n = sum(len(s["input_ids"]) for s in row)
        assert batch["input_ids"][r, :n].tolist() == [t for s in row for t in s["input_ids"]]
        assert (batch["position_ids"][r, :n] == 0).sum() == len(row)
