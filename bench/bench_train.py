"""Training throughput side by side with TRL's SFTTrainer: same model, data, length, batch, lr and steps.

    .venv/bin/python bench/bench_train.py [--steps 12] [--samples 600] [--only sftlab-packed ...]

Rows (each its own process, so peak memory is its own):

- ``trl padded``     TRL SFTTrainer, padding to the longest sample of the batch (its default collation)
- ``trl packed``     TRL with ``packing=True`` (best-fit decreasing, padding-free)
- ``sftlab padded``  sftlab's defaults without packing (length-grouped batches)
- ``sftlab packed``  sftlab's defaults (epoch-level packing, block-diagonal attention)
- with ``--trl-defaults``: also TRL with its own CPU defaults (bf16 autocast, gradient checkpointing)

LoRA r16 / alpha 32 / dropout 0.05 on every linear layer of the embedded SmolLM2-135M-Instruct,
max length 512, batch 4 (rows when packed), constant lr 2e-4, fp32 on CPU (bf16 on a GPU),
no gradient checkpointing unless stated. The data is MMLU questions turned into prompt/answer
conversations with explanations of varied length; the loss is on the answer only in both tools.

TRL lives in its own environment (``bench/.venv-trl``, created here on first use with the
same pinned torch). Throughput is non-padding tokens per second over the steps after the
first. Each trained adapter is then scored by the same code on 32 held-out conversations
(token-mean loss on the answers): that is the "equal final loss" check. The training loss
of the last 3 steps is shown too, but packed rows differ between the tools, so it is noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRL_VENV = HERE / ".venv-trl"
TORCH_VERSION = "2.13.0"


def build_data(
    out_dir: Path, n: int, max_length: int, held_out: int = 32, seed: int = 0
) -> tuple[Path, Path, Path]:
    """The same conversations as sftlab messages and as TRL prompt/completion rows, plus held-out messages."""
    import random

    from sftlab.evaluate.mmlu import load_mmlu
    from sftlab.evaluate.multiple_choice import LETTERS
    from sftlab.testing import embedded_tokenizer

    tok = embedded_tokenizer()
    rng = random.Random(seed)
    questions = load_mmlu()
    rng.shuffle(questions)
    messages_rows, trl_rows = [], []
    for q in questions:
        options = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(q.options))
        prompt = f"{q.question}\n{options}\nWhich option is correct? Explain briefly."
        right = LETTERS[q.answer]
        others = [
            f"{LETTERS[i]} ({o.strip()}) does not fit" for i, o in enumerate(q.options) if i != q.answer
        ]
        rng.shuffle(others)
        answer = f"The answer is {right}: {q.options[q.answer].strip()}. " + "; ".join(
            others[: rng.randint(0, 3)]
        )
        convo = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer.strip()}]
        if len(tok.apply_chat_template(convo, tokenize=True)) > max_length - 8:
            continue
        messages_rows.append({"messages": convo})
        trl_rows.append({"prompt": convo[:1], "completion": convo[1:]})
        if len(messages_rows) == n + held_out:
            break
    out_dir.mkdir(parents=True, exist_ok=True)
    ours, theirs = out_dir / "train_messages.jsonl", out_dir / "train_prompt_completion.jsonl"
    held = out_dir / "held_out_messages.jsonl"
    for path, rows in ((ours, messages_rows[:n]), (theirs, trl_rows[:n]), (held, messages_rows[n:])):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ours, theirs, held


def held_out_loss(model_dir: str, adapter_dir: Path, held: Path) -> float:
    """Token-mean loss of the trained adapter on held-out conversations, computed the same way for every row."""
    from peft import PeftModel

    from sftlab.data.io import read_records
    from sftlab.evaluate.loss import per_sample_loss
    from sftlab.models import load_model, load_tokenizer

    tok = load_tokenizer(model_dir)
    model = PeftModel.from_pretrained(load_model(model_dir, dtype="float32", device="cpu"), str(adapter_dir))
    losses, _ = per_sample_loss(model, tok, list(read_records(held)))
    return sum(x.loss * x.tokens for x in losses) / sum(x.tokens for x in losses)


def trl_python() -> Path:
    """TRL's own environment: torch pinned first (a bare install would pull CUDA wheels), then trl and peft."""
    python = TRL_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {TRL_VENV} (torch=={TORCH_VERSION}, trl, peft)...", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(TRL_VENV)])
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.check_call([*pip, f"torch=={TORCH_VERSION}"])
        subprocess.check_call([*pip, "trl", "peft"])
    return python


def run_worker(python: Path, script: str, argv: list[str]) -> dict:
    started = time.time()
    proc = subprocess.run([str(python), str(HERE / script), *argv], capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{script} {' '.join(argv)} failed (exit {proc.returncode})")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["wall_s"] = time.time() - started
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trl-defaults", action="store_true", help="add TRL rows with its own CPU defaults")
    ap.add_argument("--only", nargs="*", help="row names to run, e.g. 'sftlab packed'")
    ap.add_argument("--json", default=str(HERE / "out" / "train.json"))
    args = ap.parse_args()

    from sftlab.models import resolve_model

    model_dir = str(resolve_model("smollm2-135m-instruct").path)
    ours, theirs, held = build_data(HERE / "out" / "train_data", args.samples, args.max_length)
    common = ["--model", model_dir, "--steps", str(args.steps), "--batch", str(args.batch),
              "--max-length", str(args.max_length), "--lr", str(args.lr), "--threads", str(args.threads)]  # fmt: skip
    rows = {
        "trl padded": ("trl", "train_worker_trl.py", ["--data", str(theirs), "--mode", "padded"]),
        "trl packed": ("trl", "train_worker_trl.py", ["--data", str(theirs), "--mode", "packed"]),
        "sftlab padded": ("ours", "train_worker_sftlab.py", ["--data", str(ours), "--mode", "padded"]),
        "sftlab packed": ("ours", "train_worker_sftlab.py", ["--data", str(ours), "--mode", "packed"]),
    }
    if args.trl_defaults:
        for mode in ("padded", "packed"):
            rows[f"trl {mode} (TRL CPU defaults)"] = (
                "trl", "train_worker_trl.py", ["--data", str(theirs), "--mode", mode, "--trl-defaults"]
            )  # fmt: skip
    results = {}
    for name, (env, script, argv) in rows.items():
        if args.only and name not in args.only:
            continue
        python = trl_python() if env == "trl" else Path(sys.executable)
        print(f"running {name}...", flush=True)
        out = HERE / "out" / "runs" / name.replace(" ", "-")
        results[name] = r = run_worker(python, script, [*argv, *common, "--out", str(out)])
        r["held_out_loss"] = held_out_loss(model_dir, Path(r["adapter"]), held)
        print(f"  {r['tokens_per_s']:.1f} tok/s, train loss (last 3) {r['final_loss']:.4f}, "
              f"held-out loss {r['held_out_loss']:.4f}, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    base = {m: results.get(f"trl {m}") for m in ("padded", "packed")}
    print(
        "\n| run | tokens/s | vs TRL padded | vs TRL packed | held-out loss | train loss (last 3) | peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        ratios = [f"{r['tokens_per_s'] / b['tokens_per_s']:.2f}x" if b else "-" for b in base.values()]
        print(f"| {name} | {r['tokens_per_s']:.1f} | {ratios[0]} | {ratios[1]} | {r['held_out_loss']:.4f} | "
              f"{r['final_loss']:.4f} | "
              f"{r['peak_rss_mb']:.0f} |")  # fmt: skip
    print(f"\ntorch threads per run: {os.environ.get('OMP_NUM_THREADS', 'set by --threads')}")


if __name__ == "__main__":
    main()
