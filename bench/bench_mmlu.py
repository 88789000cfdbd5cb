"""MMLU log-likelihood scoring speed on the embedded 135M model: batched vs one at a time, same scores.

Three ways to score the same questions (zero-shot, letter scoring):

- ``per-option``: the textbook way — prompt + " A", prompt + " B"... each its own
  forward pass with full logits (4 forwards per question), one at a time;
- ``per-question``: ONE forward per question, the four letters read from the last
  position (``score_letters`` with batch size 1);
- ``batched``: the same, several questions per forward (left padding, length-sorted);
- ``option_text batched``: each option's full text scored, the prompt's KV cache shared by its options.

    .venv/bin/python bench/bench_mmlu.py [--questions 32] [--naive 8] [--batch-size 8] [--threads 2]

Prints questions/s for each, the speed-ups, and the largest score difference.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def per_option_scores(model, tokenizer, prompts):
    """Log-prob of each letter with a separate forward pass per (question, option)."""
    import torch

    from sftlab.evaluate.multiple_choice import LETTERS

    out = []
    with torch.inference_mode():
        for prompt in prompts:
            row = []
            for letter in LETTERS[:4]:
                ids = tokenizer(prompt + " " + letter).input_ids
                logits = model(input_ids=torch.tensor([ids])).logits[0, -2].float()
                row.append(float(torch.log_softmax(logits, -1)[ids[-1]]))
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--naive", type=int, default=8, help="questions for the slow per-option baseline")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k-shot", type=int, default=5, help="shots for the k-shot comparison (0: skip it)")
    ap.add_argument(
        "--subjects", type=int, default=4, help="k-shot: subjects, the first in alphabetical order"
    )
    ap.add_argument(
        "--per-subject", type=int, default=8, help="k-shot: questions per subject (full MMLU: ~250)"
    )
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("SFTLAB_PROGRESS", "0")
    from sftlab.evaluate.mmlu import load_mmlu, stratified_subset
    from sftlab.evaluate.multiple_choice import build_prompt, grade, score_continuations, score_letters
    from sftlab.models import load_model, load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    model = load_model("smollm2-135m-instruct", dtype="float32").eval()
    pool = load_mmlu()
    questions = [pool[i] for i in stratified_subset(pool, args.questions, args.seed)]
    prompts = [build_prompt(q) for q in questions]
    lengths = [len(tokenizer(p).input_ids) for p in prompts]
    score_letters(model, tokenizer, prompts[:2], batch_size=2)  # warm-up

    def timed(fn):
        start = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - start

    batched, t_batched = timed(lambda: score_letters(model, tokenizer, prompts, batch_size=args.batch_size))
    single, t_single = timed(lambda: score_letters(model, tokenizer, prompts, batch_size=1))
    _, t_text = timed(
        lambda: score_continuations(
            model, tokenizer, prompts, [q.options for q in questions], batch_size=args.batch_size
        )
    )
    n_naive = min(args.naive, len(prompts))
    naive, t_naive = timed(lambda: per_option_scores(model, tokenizer, prompts[:n_naive]))

    def max_diff(a, b):
        return max(abs(x - y) for r, s in zip(a, b, strict=False) for x, y in zip(r, s, strict=True))

    figures = {
        "model": "smollm2-135m-instruct (fp32, CPU)",
        "threads": args.threads,
        "questions": len(prompts),
        "prompt_tokens_mean": sum(lengths) / len(lengths),
        "batch_size": args.batch_size,
        "q_per_s_batched": len(prompts) / t_batched,
        "q_per_s_per_question": len(prompts) / t_single,
        "q_per_s_per_option": n_naive / t_naive,
        "q_per_s_option_text_batched": len(prompts) / t_text,
        "speedup_batched_vs_per_question": t_single / t_batched,
        "speedup_batched_vs_per_option": (t_naive / n_naive) / (t_batched / len(prompts)),
        "max_abs_diff_batched_vs_per_question": max_diff(batched, single),
        "max_abs_diff_batched_vs_per_option": max_diff(batched[:n_naive], naive),
        "accuracy": grade(questions, batched).accuracy,
        "load_average": os.getloadavg()[0],
    }
    if args.k_shot:
        figures.update(k_shot_figures(model, tokenizer, pool, args, timed, max_diff))
    for key, value in figures.items():
        print(f"{key:>40}: {value:.4g}" if isinstance(value, float) else f"{key:>40}: {value}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)


def k_shot_figures(model, tokenizer, pool, args, timed, max_diff) -> dict:
    """k-shot: every question of a subject carries the same solved shots, which run once per subject."""
    from sftlab.evaluate.mmlu import shot_picker
    from sftlab.evaluate.multiple_choice import build_prompt, score_letters

    by_subject: dict[str, list[int]] = {}
    for i, q in enumerate(pool):
        by_subject.setdefault(q.subject, []).append(i)
    chosen = [i for s in sorted(by_subject)[: args.subjects] for i in by_subject[s][: args.per_subject]]
    shots_for = shot_picker(pool, chosen, args.k_shot, args.seed)
    prompts = [build_prompt(pool[i], shots_for(i, pool[i])) for i in chosen]
    shared, t_shared = timed(
        lambda: score_letters(model, tokenizer, prompts, batch_size=args.batch_size, share_prefix=True)
    )
    single, t_single = timed(lambda: score_letters(model, tokenizer, prompts, batch_size=1))
    return {
        "k_shot": args.k_shot,
        "k_shot_questions": len(prompts),
        "k_shot_prompt_tokens_mean": sum(len(tokenizer(p).input_ids) for p in prompts) / len(prompts),
        "k_shot_q_per_s_batched_shared_prefix": len(prompts) / t_shared,
        "k_shot_q_per_s_per_question": len(prompts) / t_single,
        "k_shot_speedup_batched_vs_per_question": t_single / t_shared,
        "k_shot_max_abs_diff": max_diff(shared, single),
    }


if __name__ == "__main__":
    main()
