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
    optimizer: str = "adamw",
    lora_r: int = 16,
    steps: int = 3,
) -> int:
    """Peak bytes allocated over ``steps`` forward/backward/optimizer steps on random tokens (bf16 autocast)."""
    import torch

    if not torch.cuda.is_available():
        raise SftlabError(
            "--measure needs a CUDA GPU and none is visible here; drop --measure to get the estimate"
        )
    from sftlab.models import load_model

    kwargs = {}
    if method == "qlora":
        try:
            from transformers import BitsAndBytesConfig
        except ImportError:  # pragma: no cover
            raise MissingDependencyError("bitsandbytes", "--method qlora --measure") from None
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
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise MissingDependencyError("bitsandbytes", "--optimizer adamw8bit --measure") from None
        opt = bnb.optim.AdamW8bit(params, lr=1e-5)
    else:
        opt = torch.optim.AdamW(params, lr=1e-5)
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
