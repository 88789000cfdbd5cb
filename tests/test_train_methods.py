"""Every method trains on a tiny real model and leaves a loadable run folder; LoRA learns trained answers."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sftlab.data.record import Conversation, Meta, Turn
from sftlab.errors import SftlabError
from sftlab.recipe import load_recipe
from sftlab.train import run_training


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared, oversubscribed CPU a second spinning thread costs more than it gives."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


QA = [
    ("Capital of France?", "Paris"),
    ("Color of the sky?", "Blue sky"),
    ("Two plus two?", "Four"),
    ("Best pet?", "A cat"),
]


def _records(qa=QA, source="qa"):
    return [
        Conversation(turns=[Turn("user", q), Turn("assistant", a)], meta=Meta(id=str(i), source=source))
        for i, (q, a) in enumerate(qa)
    ]


def _recipe(model_dir, run_dir, *overrides):
    return load_recipe(
        None,
        [f"model.name={model_dir}", f"output_dir={run_dir}", "render.max_length=64", "training.batch_size=2",
         "training.max_steps=2", *overrides],
    )  # fmt: skip


@pytest.fixture(scope="module")
def model64(tmp_path_factory, tokenizer):
    """A tiny Llama wide enough (64) for a greedy answer to be reachable by adapters alone."""
    from sftlab.testing import save_tiny_model

    return save_tiny_model(
        tmp_path_factory.mktemp("tiny64"),
        tokenizer,
        hidden_size=64,
        intermediate_size=128,
        heads=4,
        kv_heads=2,
    )


def _greedy(ref, questions, max_new_tokens=4):
    from sftlab.models import load_model, load_tokenizer

    model, tok = load_model(ref, device="cpu"), load_tokenizer(ref)
    out = []
    for q in questions:
        enc = tok.apply_chat_template(
            [{"role": "user", "content": q}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
        out.append(tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return out


def test_lora_overfits_and_reproduces_trained_answers(model64, tmp_path):
    run = tmp_path / "run"
    recipe = _recipe(
        model64, run, "training.max_steps=60", "training.batch_size=4", "training.lr=5e-3", "training.lora.dropout=0",
        "training.warmup_ratio=0", "training.scheduler=constant", "render.packing=false", "training.save_steps=60",
    )  # fmt: skip
    result = run_training(recipe, _records(), [], run)
    rows = [json.loads(x) for x in result.metrics_path.read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0] - 0.5
    questions = [q for q, _ in QA]
    before, after = _greedy(str(model64), questions), _greedy(str(run), questions)
    for (_, answer), b, a in zip(QA, before, after, strict=True):
        assert a.startswith(answer), (answer, a)
        assert not b.startswith(answer)
    # the run folder is what the evaluation and serving stages load
    final = run / "final"
    assert (final / "adapter_model.safetensors").is_file() and (final / "chat_template.jinja").is_file()
    assert json.loads((final / "sftlab_base.json").read_text()) == {"base_model": str(model64)}
    assert (run / "recipe.resolved.yaml").is_file() and (
        run / "train" / "loss_curve.png"
    ).stat().st_size > 1000
    summary = json.loads((run / "train" / "summary.json").read_text())
    assert summary["steps"] == 60 and summary["method"] == "lora" and summary["tokens_per_second"] > 0


@pytest.mark.parametrize(
    "method,extra",
    [
        ("full", []),
        ("freeze", ["training.freeze.trainable_layers=1"]),
        (
            "lora",
            ["training.lora.use_rslora=true", "training.lora.loraplus_lr_ratio=16", "training.lora.r=4"],
        ),
        (
            "lora",
            [
                "training.lora.use_dora=true",
                "training.lora.target_modules=[q_proj, v_proj]",
                "training.gradient_checkpointing=true",
            ],
        ),
        ("lora", ["training.lora.init=pissa", "training.lora.r=4"]),
        ("prompt_tuning", ["training.prompt.num_virtual_tokens=4"]),
        ("p_tuning", ["training.prompt.num_virtual_tokens=4", "training.prompt.encoder_hidden_size=8"]),
    ],
)
def test_every_method_trains_and_saves_a_loadable_model(method, extra, tiny_model_dir, tmp_path):
    from sftlab.models import load_model

    run = tmp_path / "run"
    recipe = _recipe(tiny_model_dir, run, f"training.method={method}", "training.lr=1e-2", *extra)
    result = run_training(recipe, _records(), [], run)
    assert result.steps == 2 and result.train_loss is not None and result.train_loss == result.train_loss
    assert 0 < result.summary["trainable_parameters"] <= result.summary["total_parameters"]
    base = load_file(tiny_model_dir / "model.safetensors")
    final = run / "final"
    if method in ("full", "freeze"):
        trained = load_file(final / "model.safetensors")
        changed = {k for k in base if not torch.equal(base[k], trained[k])}
        if method == "full":
            assert any("layers.0." in k for k in changed) and any("layers.1." in k for k in changed)
        else:  # only the last block trains
            assert changed and all("layers.1." in k for k in changed)
    else:
        adapter = load_file(final / "adapter_model.safetensors")
        assert adapter and all(torch.isfinite(v).all() for v in adapter.values())
        if method == "lora":
            assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())
    model = load_model(str(run), device="cpu")  # adapters load on their base automatically
    ids = torch.tensor([[1, 2, 3]])
    assert torch.isfinite(model(input_ids=ids).logits).all()


def test_pissa_adapter_is_converted_back_to_plain_lora(tiny_model_dir, tokenizer, tmp_path):
    """PiSSA rewrites the base; the saved adapter must reproduce the trained model on the *untouched* base."""
    from sftlab.models import load_model
    from sftlab.recipe.sections.training import LoraSection, TrainingSection
    from sftlab.testing import tiny_llama
    from sftlab.train.methods import prepare_model
    from sftlab.train.model_load import save_pissa_init as _save_pissa_init

    model = prepare_model(
        tiny_llama(tokenizer), TrainingSection(method="lora", lora=LoraSection(init="pissa", r=4))
    )
    init_dir = _save_pissa_init(model, tmp_path)
    with torch.no_grad():  # stands in for training: move every adapter weight
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(torch.randn_like(p) * 0.05)
    ids = torch.tensor([[10, 20, 30, 40]])
    expected = model.eval()(input_ids=ids).logits  # eval: no adapter dropout
    out = tmp_path / "adapter"
    model.save_pretrained(out, path_initial_model_for_weight_conversion=str(init_dir))
    (out / "sftlab_base.json").write_text(json.dumps({"base_model": str(tiny_model_dir)}))
    reloaded = load_model(str(out), device="cpu")
    assert torch.allclose(reloaded(input_ids=ids).logits, expected, atol=1e-4)
    base = load_model(str(tiny_model_dir), device="cpu")
    assert not torch.allclose(base(input_ids=ids).logits, expected, atol=1e-4)


def test_qlora_on_cpu_says_it_needs_cuda(tiny_model_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    recipe = _recipe(tiny_model_dir, tmp_path / "run", "training.method=qlora")
    with pytest.raises(SftlabError, match="needs a CUDA GPU.*method: lora"):
        run_training(recipe, _records(), [], tmp_path / "run")


def test_full_fine_tuning_of_quantized_weights_is_refused(tokenizer):
    from sftlab.recipe.sections.training import TrainingSection
    from sftlab.testing import tiny_llama
    from sftlab.train.methods import prepare_model

    model = tiny_llama(tokenizer)
    model.config.quantization_config = {"load_in_4bit": True}  # what a bitsandbytes load records
    with pytest.raises(SftlabError, match="quantised.*qlora"):
        prepare_model(model, TrainingSection(method="full"))


@pytest.mark.gpu
def test_qlora_trains_on_gpu(tiny_model_dir, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("bitsandbytes")
    run = tmp_path / "run"
    recipe = _recipe(tiny_model_dir, run, "training.method=qlora", "training.lr=1e-2")
    result = run_training(recipe, _records(), [], run)
    assert result.steps == 2 and (run / "final" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_lora_on_the_embedded_135m_model_lowers_eval_loss(tmp_path):
    """The real path: embedded SmolLM2-135M-Instruct, its own chat template, LoRA, eval and best checkpoint."""
    run = tmp_path / "run"
    recipe = load_recipe(
        None,
        [f"output_dir={run}", "render.max_length=64", "training.batch_size=2", "training.max_steps=4",
         "training.eval_steps=2", "training.warmup_ratio=0"],
    )  # fmt: skip
    train = [
        Conversation(
            turns=[Turn("user", f"What is {i}+{i}?"), Turn("assistant", f"{2 * i}")], meta=Meta(source="m")
        )
        for i in range(8)
    ]
    evals = [
        Conversation(
            turns=[Turn("user", f"What is {i}+{i}?"), Turn("assistant", f"{2 * i}")], meta=Meta(source="m")
        )
        for i in range(20, 23)
    ]
    result = run_training(recipe, train, evals, run)
    rows = [json.loads(x) for x in result.metrics_path.read_text().splitlines()]
    eval_losses = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(eval_losses) == 2 and eval_losses[1] < eval_losses[0]
    assert json.loads((run / "final" / "sftlab_base.json").read_text()) == {
        "base_model": "smollm2-135m-instruct"
    }
