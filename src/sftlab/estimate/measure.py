"""``--measure``: a few real training steps on the GPU, reporting ``torch.cuda.max_memory_allocated``."""

from __future__ import annotations

from sftlab.errors import MissingDependencyError, SftlabError


def measure_peak(
    reference: str,
    *,
    method: str,
    seq_len: int,
    batch: int,
    grad_checkpointing: bool = False,
    optimizer: str = "adamw_torch",
    lora_r: int = 16,
    steps: int = 3,
) -> int:
    """Peak bytes allocated over ``steps`` forward/backward/optimizer steps on random tokens (bf16 autocast).

    The optimizer is built by the HF Trainer from its name, exactly as in training (``training.optimizer``).
    """
    import torch

    if not torch.cuda.is_available():
        raise SftlabError(
            "--measure needs a CUDA GPU and none is visible here; drop --measure to get the estimate"
        )
    from sftlab.models import load_model

    kwargs = {}
    if method == "qlora":
        import importlib.util

        from transformers import BitsAndBytesConfig

        if importlib.util.find_spec("bitsandbytes") is None:
            raise MissingDependencyError(
                "bitsandbytes", "--method qlora --measure", "pip install 'sftlab[gpu]'"
            )
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    dtype = "bfloat16" if method != "full" else "float32"
    model = load_model(reference, dtype=dtype, device="cuda", **kwargs)
    if method != "full":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules="all-linear")
        )
    if grad_checkpointing:
        from sftlab.train.methods import enable_gradient_checkpointing

        enable_gradient_checkpointing(model)  # non-reentrant, as training does
    opt = build_optimizer(model, optimizer)
    vocab = model.config.vocab_size
    torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        ids = torch.randint(0, vocab, (batch, seq_len), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def build_optimizer(model, name: str, lr: float = 1e-5):
    """The optimizer the HF Trainer builds for ``TrainingArguments(optim=name)``, over the trained parameters;
    bitsandbytes missing is one line naming the extra."""
    import tempfile

    from transformers import Trainer, TrainingArguments

    from sftlab.train.hardware import detect_device, detect_installed
    from sftlab.train.optim import canonical_optimizer, check_optimizer

    name = check_optimizer(canonical_optimizer(name), detect_device(), detect_installed())
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, optim=name, learning_rate=lr, report_to="none")
        cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return cls([p for p in model.parameters() if p.requires_grad], **kwargs)
