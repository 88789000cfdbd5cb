"""The GPU comparison behind bench/gpu_check.sh: TRL default, TRL best and sftlab, full and LoRA, then estimate.

    python bench/gpu_bench.py [--out bench/out/gpu] [--steps 15] [--seq-len 2048] [--batch 4]
    python bench/gpu_bench.py --dry-run --out DIR    # CPU: tiny model, real runs, same writers

A ~0.5B Llama-style model with random weights (hidden 1536, 16 layers, GQA 12/4 heads, SwiGLU 4096,
the embedded tokenizer's 49,152-token vocabulary, tied embeddings) trains on single-turn
conversations of varied length up to ``--seq-len`` built from the embedded MMLU questions
(several questions per prompt, their answers explained in the completion). Each row runs in
its own process (``gpu_worker.py``). Reported per row: real tokens/s, peak
``torch.cuda.max_memory_allocated``, MFU against the GPU's dense bf16 peak, and the final loss.
Then ``sftlab estimate --measure`` is set against the estimate for three configurations.

MFU counts model FLOPs per trained-sequence token: ``6·N`` for full fine-tuning and ``4·N`` for
LoRA (frozen weights get no weight gradient), plus causal attention ``6·L·h·n̄`` (``n̄`` = the
token-weighted mean sample length), with N the non-embedding parameters plus the output head.
Writes ``gpu_bench.json`` and ``gpu_bench.md`` (a table for BENCHMARKS.md) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from gpu_report import estimate_rows, write_reports  # noqa: E402

BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 989.0,
                    "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}  # fmt: skip
"""Dense bf16 tensor-core peaks from the vendors' data sheets (not measured here), by device-name substring."""
ROWS = ("trl_default", "trl_best", "sftlab")
SIZES = {
    "0.5b": {"hidden_size": 1536, "intermediate_size": 4096, "num_hidden_layers": 16,
             "num_attention_heads": 12, "num_key_value_heads": 4},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2},
}  # fmt: skip


def arguments(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "out" / "gpu"))
    ap.add_argument(
        "--dry-run", action="store_true", help="CPU: tiny model, short rows, no TRL, no --measure"
    )
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per row (default 15; dry run 3)")
    ap.add_argument(
        "--seq-len", type=int, default=None, help="max tokens per sample/row (default 2048; dry 128)"
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument(
        "--samples", type=int, default=None, help="conversations built (default 1000; dry run 24)"
    )
    ap.add_argument("--size", choices=sorted(SIZES), default=None)
    ap.add_argument("--methods", nargs="*", default=["full", "lora"])
    ap.add_argument("--rows", nargs="*", default=list(ROWS))
    args = ap.parse_args(argv)
    dry = args.dry_run
    args.steps = args.steps or (3 if dry else 15)
    args.seq_len = args.seq_len or (128 if dry else 2048)
    args.samples = args.samples or (24 if dry else 1000)
    args.size = args.size or ("tiny" if dry else "0.5b")
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first step is left out of the rate)")
    return args


def llama_config(size: str, tokenizer):
    """The benchmark model's config: Llama-style, random weights, the embedded tokenizer's vocabulary."""
    from transformers import LlamaConfig

    dims = SIZES[size]
    return LlamaConfig(vocab_size=len(tokenizer), head_dim=dims["hidden_size"] // dims["num_attention_heads"],
                       max_position_embeddings=4096, tie_word_embeddings=True, rope_theta=10000.0,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, **dims)  # fmt: skip


def save_model(config, tokenizer, folder: Path) -> Path:
    """Random weights in bf16 (as a hub checkpoint ships) plus the tokenizer, once per output folder."""
    import torch
    from transformers import LlamaForCausalLM

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_data(out: Path, tokenizer, n: int, seq_len: int, seed: int = 0) -> tuple[Path, Path, list[int]]:
    """Conversations of 1-24 MMLU questions each, as sftlab messages and TRL prompt/completion rows."""
    from sftlab.evaluate.mmlu import load_mmlu

    rng = random.Random(seed)
    questions = load_mmlu()
    ours, theirs, lengths = [], [], []
    while len(ours) < n:
        k = min(24, max(1, int(rng.lognormvariate(1.2, 0.9))))
        picked = rng.sample(questions, k)
        prompt = "\n\n".join(f"{q.question}\n" + "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(q.options))
                             for q in picked) + "\n\nAnswer each question and say why."  # fmt: skip
        answer = "\n".join(f"{j + 1}. {'ABCD'[q.answer]}: {q.options[q.answer].strip()}, because it fits "
                           f"{q.question.split()[0].lower()} best." for j, q in enumerate(picked))  # fmt: skip
        convo = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        length = len(tokenizer.apply_chat_template(convo, tokenize=True, return_dict=False))
        if length > seq_len - 8:
            continue
        ours.append({"messages": convo})
        theirs.append({"prompt": convo[:1], "completion": convo[1:]})
        lengths.append(length)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "messages.jsonl", out / "prompt_completion.jsonl"
    for path, rows in zip(paths, (ours, theirs), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths[0], paths[1], lengths


def flops_per_token(config, method: str, lengths: list[int]) -> float:
    """Model FLOPs per token (see the module docstring)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * config.intermediate_size
    n = layers * per_layer + config.vocab_size * h  # the output head is a matmul per token too
    mean_ctx = sum(x * x for x in lengths) / max(1, sum(lengths))
    return (6 if method == "full" else 4) * n + 6 * layers * h * mean_ctx


def bf16_peak(device_name: str | None) -> float | None:
    """Data-sheet dense bf16 FLOP/s for a device name, or None (CPU, unknown GPU)."""
    for key, tflops in BF16_PEAK_TFLOPS.items():
        if device_name and key in device_name:
            return tflops * 1e12
    return None


def run_row(row: str, method: str, args, model_dir: Path, data: tuple[Path, Path], out: Path) -> dict:
    """One worker process; a failed row is kept with its error tail rather than stopping the others."""
    import importlib.util

    if row.startswith("trl") and importlib.util.find_spec("trl") is None:
        return {"row": row, "method": method, "skipped": "trl is not installed"}
    cmd = [sys.executable, str(HERE / "gpu_worker.py"), "--row", row, "--method", method, "--model", str(model_dir),
           "--data-messages", str(data[0]), "--data-prompt-completion", str(data[1]), "--seq-len",
           str(args.seq_len), "--batch", str(args.batch), "--steps", str(args.steps),
           "--out", str(out / "runs" / f"{row}-{method}")]  # fmt: skip
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        return {"row": row, "method": method, "error": " | ".join(tail)}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["wall_s"] = round(time.time() - started, 1)
    return result


def plan_lines() -> list[str]:
    """What sftlab would choose on this machine and on a described H100 with every package (CPU-checkable)."""
    from sftlab.recipe.schema import Recipe
    from sftlab.train.hardware import Device, Installed
    from sftlab.train.setup import plan_setup

    recipe = Recipe.model_validate({"name": "plan", "render": {"packing": True}})
    h100 = Device.cuda("NVIDIA H100 80GB HBM3", (9, 0), 80.0)
    everything = Installed.of("flash_attn", "liger_kernel", "bitsandbytes")
    return [
        "this machine: " + plan_setup(recipe, packing=True, n_params=5 * 10**8).describe(),
        "H100, every package: "
        + plan_setup(
            recipe, packing=True, n_params=5 * 10**8, device=h100, installed=everything
        ).describe(),  # fmt: skip
        "H100, no flash-attn/liger: "
        + plan_setup(
            recipe, packing=True, n_params=5 * 10**8, device=h100, installed=Installed()
        ).describe(),  # fmt: skip
    ]


def main(argv=None) -> int:
    args = arguments(argv)
    from sftlab.testing import embedded_tokenizer
    from sftlab.train.hardware import detect_device

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = embedded_tokenizer()
    config = llama_config(args.size, tokenizer)
    model_dir = save_model(config, tokenizer, out / f"model-{args.size}")
    *data, lengths = build_data(out / "data", tokenizer, args.samples, args.seq_len)
    device = detect_device()
    peak = bf16_peak(device.name if device.is_cuda else None)
    rows = []
    for method in args.methods:
        for row in args.rows:
            print(f"running {row} ({method})...", flush=True)
            r = run_row(row, method, args, model_dir, tuple(data), out)
            if "tokens_per_s" in r:
                flops = flops_per_token(config, method, lengths)
                r["mfu"] = flops * r["tokens_per_s"] / peak if peak else None
            print("  " + json.dumps({k: r.get(k) for k in ("tokens_per_s", "final_loss", "mfu", "error", "skipped")}),
                  flush=True)  # fmt: skip
            rows.append(r)
    report = {
        "dry_run": args.dry_run,
        "device": device.describe(),
        "bf16_peak_flops": peak,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "model": {"size": args.size, "parameters": _param_count(config)},
        "data": {
            "samples": len(lengths),
            "mean_tokens": sum(lengths) / len(lengths),
            "max_tokens": max(lengths),
        },
        "plan": plan_lines(),
        "rows": rows,
        "estimate": estimate_rows(model_dir, args.seq_len, measure=not args.dry_run),
    }
    write_reports(report, out)
    print(f"wrote {out / 'gpu_bench.json'} and {out / 'gpu_bench.md'}")
    return 1 if any("error" in r for r in rows) else 0


def _param_count(config) -> int:
    from sftlab.estimate import count_params

    return count_params(config).total


if __name__ == "__main__":
    sys.exit(main())
