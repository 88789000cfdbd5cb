"""One row of bench/gpu_bench.py's training comparison, in its own process so that its peak memory is its own.

    python bench/gpu_worker.py --row sftlab|trl_default|trl_best --method full|lora --model DIR \\
        --data-messages F --data-prompt-completion F --seq-len 2048 --batch 4 --steps 20

Rows:

- ``trl_default``: TRL's ``SFTTrainer`` with its defaults (no packing, padded batches, no Liger),
  bf16 on the GPU;
- ``trl_best``: TRL with packing (best-fit decreasing), padding-free rows and Liger kernels,
  flash-attention 2 where installed (its padding-free mode needs it);
- ``sftlab``: ``sftlab train``'s own path with its defaults (epoch packing, ``auto`` attention,
  kernels, optimizer and gradient checkpointing).

Prints one ``RESULT {json}`` line: tokens/s (real tokens, steps after the first), peak
``torch.cuda.max_memory_allocated``, the mean loss of the last 3 steps, and the setup used.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_common import Meter, emit  # noqa: E402

LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}


def arguments() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", choices=["sftlab", "trl_default", "trl_best"], required=True)
    ap.add_argument("--method", choices=["full", "lora"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-messages", required=True)
    ap.add_argument("--data-prompt-completion", required=True)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--out", required=True)
    return ap


def sftlab_row(args, meter: Meter) -> dict:
    """``sftlab train`` with its defaults on this machine; the setup it chose comes back in the result."""
    os.environ.setdefault("SFTLAB_PROGRESS", "0")
    import torch

    from sftlab.data.io import read_source
    from sftlab.recipe.schema import Recipe
    from sftlab.train.run import run_training

    cuda = torch.cuda.is_available()
    training = {
        "method": args.method,
        "max_steps": args.steps,
        "batch_size": args.batch,
        "scheduler": "constant",
        "warmup_ratio": 0.0,
        "logging_steps": 1,
        "save_total_limit": 1,
        "precision": "bf16" if cuda else "fp32",
        "lora": LORA,
    }
    if args.lr:
        training["lr"] = args.lr
    recipe = Recipe.model_validate(
        {
            "name": "gpu-bench",
            "output_dir": args.out,
            "seed": 0,
            "model": {"name": args.model},
            "data": {"sources": [{"path": args.data_messages}]},
            "render": {"max_length": args.seq_len, "packing": True},
            "training": training,
        }
    )
    records = list(read_source(recipe.data.sources[0]))
    result = run_training(recipe, records, [], args.out, callbacks=[meter])
    keys = ("attention", "packed_rows", "kernels", "optimizer", "gradient_checkpointing", "precision")
    return {"setup": {k: result.summary.get(k) for k in keys}}


def trl_row(args, meter: Meter, best: bool) -> dict:
    """TRL's SFTTrainer, defaults or its fastest documented settings; unknown options of this TRL are dropped."""
    import torch
    import trl
    from datasets import load_dataset
    from peft import LoraConfig

    cuda = torch.cuda.is_available()
    options = {
        "output_dir": args.out,
        "max_steps": args.steps,
        "per_device_train_batch_size": args.batch,
        "learning_rate": args.lr or (2e-4 if args.method == "lora" else 1e-5),
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 0,
        "max_length": args.seq_len,
        "bf16": cuda,
        "use_cpu": not cuda,
    }
    if best:
        attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
        options |= {
            "packing": True,
            "packing_strategy": "bfd",
            "padding_free": True,
            "use_liger_kernel": bool(importlib.util.find_spec("liger_kernel")) and cuda,
            "model_init_kwargs": {"attn_implementation": attn},
        }
    known = {f.name for f in dataclasses.fields(trl.SFTConfig)}
    dropped = sorted(set(options) - known)
    config = trl.SFTConfig(**{k: v for k, v in options.items() if k in known})
    peft_config = None
    if args.method == "lora":
        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                 task_type="CAUSAL_LM")  # fmt: skip
    data = load_dataset("json", data_files=args.data_prompt_completion, split="train")
    trainer = trl.SFTTrainer(model=args.model, args=config, train_dataset=data, peft_config=peft_config,
                             callbacks=[meter])  # fmt: skip
    trainer.train()
    setup = {k: getattr(config, k, None) for k in ("packing", "padding_free", "use_liger_kernel",
                                                     "gradient_checkpointing", "optim")}  # fmt: skip
    setup["attention"] = getattr(trainer.model.config, "_attn_implementation", None)
    return {"setup": setup, "trl_version": trl.__version__, "dropped_options": dropped}


def main() -> None:
    args = arguments().parse_args()
    import torch

    meter = Meter(warmup=1)
    if args.row == "sftlab":
        extra = sftlab_row(args, meter)
    else:
        extra = trl_row(args, meter, best=args.row == "trl_best")
    result = meter.result()
    result.pop("losses", None)
    result.update(extra, row=args.row, method=args.method)
    if torch.cuda.is_available():
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
        result["device"] = torch.cuda.get_device_name()
    emit(result)


if __name__ == "__main__":
    main()
