"""The GPU path's decisions, on a CPU: attention, packed-row mode, kernels, optimizer, checkpointing, doctor.

Every decision takes a device description, so an H100, a V100 and the CPU are all tested here without one.
What only a GPU can show (the kernels' numbers) is in test_gpu_kernels.py and runs in bench/gpu_check.sh.
"""

from __future__ import annotations

import json

import pytest

from sftlab.errors import SftlabError
from sftlab.recipe import load_recipe
from sftlab.train.attention import choose_attention, packed_mode, training_attention
from sftlab.train.hardware import Device, Installed
from sftlab.train.setup import plan_setup

H100 = Device.cuda("NVIDIA H100 80GB HBM3", (9, 0), 79.1)
V100 = Device.cuda("Tesla V100-SXM2-16GB", (7, 0), 15.8)
CPU = Device()
EVERYTHING = Installed.of("flash_attn", "liger_kernel", "bitsandbytes")
NOTHING = Installed()


@pytest.mark.parametrize(
    ("device", "installed", "expected"),
    [
        (H100, EVERYTHING, "flash_attention_2"),
        (H100, NOTHING, "sdpa"),  # flash-attn missing
        (V100, EVERYTHING, "sdpa"),  # no flash-attention 2 kernels below sm 8.0
        (CPU, EVERYTHING, "sdpa"),
    ],
)
def test_auto_attention_is_flash_where_it_can_run_else_sdpa(device, installed, expected):
    assert choose_attention("auto", device, installed) == expected


@pytest.mark.parametrize(
    ("device", "installed", "match"),
    [
        (CPU, EVERYTHING, "needs a CUDA GPU; use sdpa"),
        (V100, EVERYTHING, r"compute capability 8\.0\+ and this GPU is Tesla V100.*sm 7\.0"),
        (H100, NOTHING, "pip install flash-attn"),
    ],
)
def test_flash_attention_requested_where_it_cannot_run_is_one_line(device, installed, match):
    with pytest.raises(SftlabError, match=match) as err:
        choose_attention("flash_attention_2", device, installed)
    assert "\n" not in str(err.value)


def test_packed_rows_on_a_gpu_are_never_a_dense_mask():
    assert packed_mode(training_attention("flash_attention_2", H100, packing=True)) == "flash"
    assert packed_mode(training_attention("sdpa", H100, packing=True)) == "flex"
    assert packed_mode(training_attention("eager", V100, packing=True)) == "flex"
    assert packed_mode(training_attention("sdpa", CPU, packing=True)) == "sdpa"  # the CPU path
    assert training_attention("sdpa", H100, packing=False) == "sdpa"  # padded rows keep the model's kernel


def _recipe(*overrides):
    return load_recipe(None, list(overrides))


def test_plan_on_an_h100_with_every_package():
    setup = plan_setup(_recipe(), packing=True, n_params=500_000_000, device=H100, installed=EVERYTHING)
    assert (setup.attention, setup.packed, setup.kernels, setup.optimizer) == (
        "flash_attention_2", "flash", "liger", "adamw_torch_fused"
    )  # fmt: skip
    assert not setup.gradient_checkpointing  # LoRA: the activations are not the problem
    assert setup.describe() == (
        "setup: NVIDIA H100 80GB HBM3 (sm 9.0, 79 GiB); attention flash_attention_2 (packed rows: padding-free, "
        "flash-attn varlen); kernels liger (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU); optimizer "
        "adamw_torch_fused; gradient checkpointing off"
    )


def test_plan_on_a_bare_gpu_and_on_cpu():
    bare = plan_setup(_recipe(), packing=True, n_params=10**8, device=H100, installed=NOTHING)
    assert (bare.attention, bare.packed, bare.kernels) == ("flex_attention", "flex", "none")
    cpu = plan_setup(_recipe(), packing=True, n_params=10**8, device=CPU, installed=EVERYTHING)
    assert (cpu.attention, cpu.packed, cpu.kernels) == ("sdpa", "sdpa", "none")
    assert cpu.to_dict()["packed_rows"] == "dense block-diagonal mask (CPU path)"


@pytest.mark.parametrize(
    ("method", "n_params", "device", "setting", "expected"),
    [
        ("full", 1_500_000_000, H100, "auto", True),
        ("full", 500_000_000, H100, "auto", False),
        ("lora", 8_000_000_000, H100, "auto", False),
        ("full", 1_500_000_000, CPU, "auto", False),
        ("lora", 10**6, CPU, True, True),  # an explicit setting wins
    ],
)
def test_gradient_checkpointing_auto(method, n_params, device, setting, expected):
    recipe = _recipe(f"training.method={method}", f"training.gradient_checkpointing={setting}")
    setup = plan_setup(recipe, packing=False, n_params=n_params, device=device, installed=NOTHING)
    assert setup.gradient_checkpointing is expected


def test_kernels_liger_where_it_cannot_run_is_one_line():
    with pytest.raises(SftlabError, match="CUDA GPU; use auto or none on CPU"):
        plan_setup(
            _recipe("training.kernels=liger"), packing=False, n_params=1, device=CPU, installed=EVERYTHING
        )
    with pytest.raises(SftlabError, match=r"liger-kernel.*sftlab\[gpu\]"):
        plan_setup(
            _recipe("training.kernels=liger"), packing=False, n_params=1, device=H100, installed=NOTHING
        )
    none = plan_setup(
        _recipe("training.kernels=none"), packing=False, n_params=1, device=H100, installed=EVERYTHING
    )
    assert none.kernels == "none"


def test_optimizer_needing_bitsandbytes_is_one_line_naming_the_extra():
    with pytest.raises(SftlabError) as err:
        plan_setup(_recipe("training.optimizer=paged_adamw_8bit"), packing=False, n_params=1, device=H100,
                   installed=NOTHING)  # fmt: skip
    message = str(err.value)
    assert "bitsandbytes" in message and "sftlab[gpu]" in message and "\n" not in message
    with pytest.raises(SftlabError, match="CUDA kernels; use adamw_torch or adafactor on CPU"):
        plan_setup(_recipe("training.optimizer=adamw_8bit"), packing=False, n_params=1, device=CPU,
                   installed=EVERYTHING)  # fmt: skip


def test_optimizer_names_are_the_hf_trainers_and_reach_its_arguments(tmp_path):
    from transformers.training_args import OptimizerNames

    from sftlab.train.optim import OPTIMIZERS, STATE_BYTES
    from sftlab.train.run import _training_arguments

    assert set(OPTIMIZERS) <= {o.value for o in OptimizerNames} and set(OPTIMIZERS) == set(STATE_BYTES)
    args = _training_arguments(_recipe("training.optimizer=adafactor"), tmp_path, "fp32", 5, False, False)
    assert args.optim == "adafactor"
    with pytest.raises(SftlabError, match="training.optimizer"):
        _recipe("training.optimizer=adam_typo")


def test_estimate_takes_the_same_optimizer_names(tiny_model):
    from sftlab.estimate import count_params, estimate_memory
    from sftlab.train.optim import OPTIMIZERS

    config = tiny_model.config
    for name in OPTIMIZERS:
        estimate_memory(config, method="full", optimizer=name)
    with pytest.raises(SftlabError, match="--optimizer must be one of adamw_torch, adamw_torch_fused"):
        estimate_memory(config, optimizer="adam_typo")
    counts = count_params(config)
    ada = estimate_memory(config, method="full", optimizer="adafactor")
    assert ada.parts["optimizer_states"] == 4 * counts.factored < 4 * counts.total
    assert estimate_memory(config, method="full", optimizer="adamw8bit").optimizer == "adamw_8bit"  # old name
    assert estimate_memory(config, method="full", grad_checkpointing="auto").grad_checkpointing is False


def test_resolve_precision_from_a_device_description():
    from sftlab.train.precision import resolve_precision

    assert resolve_precision("auto", H100) == "bf16"
    assert resolve_precision("auto", V100) == "fp16"
    assert resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(SftlabError, match=r"bf16 needs compute capability 8\.0\+.*training.precision: fp16"):
        resolve_precision("bf16", V100)


def _hardware_codes(recipe, device, installed=NOTHING):
    from sftlab.train.doctor_hardware import check_hardware

    return {f.code: f for f in check_hardware(recipe, device, installed)}


def test_doctor_on_a_v100(tmp_path, tokenizer):
    from sftlab.testing import save_tiny_model

    codes = _hardware_codes(_recipe("training.precision=bf16"), V100, EVERYTHING)
    assert codes["precision_unsupported"].severity == "error" and "fp16" in codes["precision_unsupported"].why
    codes = _hardware_codes(_recipe("model.attn_implementation=flash_attention_2"), V100, EVERYTHING)
    assert codes["flash_attention_unavailable"].severity == "error"
    bf16_model = save_tiny_model(tmp_path / "bf16", tokenizer)
    config = json.loads((bf16_model / "config.json").read_text())
    (bf16_model / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    codes = _hardware_codes(_recipe(f"model.name={bf16_model}"), V100, EVERYTHING)  # auto -> fp16 here
    assert codes["fp16_on_bf16_model"].severity == "warning"
    assert "fp16_on_bf16_model" not in _hardware_codes(_recipe(f"model.name={bf16_model}"), H100, EVERYTHING)


def test_doctor_qlora_optimizer_and_kernels():
    assert _hardware_codes(_recipe("training.method=qlora"), CPU)["qlora_unavailable"].severity == "error"
    assert "bitsandbytes" in _hardware_codes(_recipe("training.method=qlora"), H100)["qlora_unavailable"].why
    assert "qlora_unavailable" not in _hardware_codes(_recipe("training.method=qlora"), H100, EVERYTHING)
    assert "optimizer_unavailable" in _hardware_codes(_recipe("training.optimizer=adamw_8bit"), H100)
    assert "kernels_unavailable" in _hardware_codes(_recipe("training.kernels=liger"), CPU)
    assert _hardware_codes(_recipe(), H100, EVERYTHING) == {}


def test_load_model_auto_attention_on_cpu_is_sdpa(tiny_model_dir):
    from sftlab.models import load_model
    from sftlab.models.load import resolve_attention

    assert resolve_attention("auto", "cpu") == "sdpa"
    model = load_model(str(tiny_model_dir), device="cpu")
    assert model.config._attn_implementation == "sdpa"


def test_training_prints_and_records_its_setup(tiny_model_dir, tmp_path, capsys):
    from sftlab.data.record import Conversation, Meta, Turn
    from sftlab.train import run_training

    run = tmp_path / "run"
    recipe = _recipe(f"model.name={tiny_model_dir}", f"output_dir={run}", "render.max_length=64",
                     "render.packing=true", "training.max_steps=1", "training.optimizer=adafactor")  # fmt: skip
    records = [
        Conversation(turns=[Turn("user", f"q{i}"), Turn("assistant", f"a{i}")], meta=Meta()) for i in range(4)
    ]
    result = run_training(recipe, records, [], run)
    assert (
        "setup: cpu; attention sdpa (packed rows: dense block-diagonal mask (CPU path))"
        in capsys.readouterr().err
    )
    summary = json.loads((run / "train" / "summary.json").read_text())
    assert result.summary["kernels"] == summary["kernels"] == "none"
    assert (summary["attention"], summary["optimizer"], summary["gradient_checkpointing"]) == (
        "sdpa",
        "adafactor",
        False,
    )
