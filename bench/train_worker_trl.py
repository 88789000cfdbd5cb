"""One TRL ``SFTTrainer`` run for bench_train.py; runs in TRL's own environment (bench/.venv-trl).

    python bench/train_worker_trl.py --model DIR --data FILE.jsonl --mode padded|packed [--steps 12] ...

The data is prompt/completion conversations, so TRL trains on the completion only,
as sftlab does on assistant turns. Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_common import Meter, emit, worker_arguments  # noqa: E402


def main() -> None:
    ap = worker_arguments("bench/out/trl_run")
    ap.add_argument(
        "--trl-defaults", action="store_true", help="keep TRL's own bf16 and gradient checkpointing defaults"
    )
    args = ap.parse_args()

    import torch
    import trl
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(args.model)
    dtype = torch.bfloat16 if cuda else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa")
    data = load_dataset("json", data_files=args.data, split="train")
    extra = {} if args.trl_defaults else {"bf16": cuda, "gradient_checkpointing": False}
    config = trl.SFTConfig(
        output_dir=args.out,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
        max_length=args.max_length,
        packing=args.mode == "packed",
        dataloader_num_workers=0,
        use_cpu=not cuda,
        **extra,
    )
    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    meter = Meter()
    trainer = trl.SFTTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=[meter],
    )
    trainer.train()
    trainer.save_model(os.path.join(args.out, "adapter"))
    result = meter.result()
    result["adapter"] = os.path.join(args.out, "adapter")
    if cuda:
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result.update(framework="trl", version=trl.__version__, mode=args.mode, trl_defaults=args.trl_defaults)
    emit(result)


if __name__ == "__main__":
    main()
