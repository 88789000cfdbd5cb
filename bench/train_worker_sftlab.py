"""One sftlab training run for bench_train.py, through the same path as ``sftlab train``.

    .venv/bin/python bench/train_worker_sftlab.py --model DIR --data FILE.jsonl --mode padded|packed [--steps 12] ...

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_common import Meter, emit, worker_arguments  # noqa: E402


def main() -> None:
    ap = worker_arguments("bench/out/sftlab_run")
    args = ap.parse_args()

    import torch

    os.environ.setdefault("SFTLAB_PROGRESS", "0")
    torch.set_num_threads(args.threads)

    import sftlab
    from sftlab.data.io import read_source
    from sftlab.recipe.schema import Recipe
    from sftlab.train.run import run_training

    cuda = torch.cuda.is_available()
    recipe = Recipe.model_validate(
        {
            "name": "bench",
            "output_dir": args.out,
            "seed": 0,
            "model": {"name": args.model},
            "data": {"sources": [{"path": args.data}]},
            "render": {"max_length": args.max_length, "packing": args.mode == "packed"},
            "training": {
                "method": "lora",
                "lr": args.lr,
                "max_steps": args.steps,
                "batch_size": args.batch,
                "scheduler": "constant",
                "warmup_ratio": 0.0,
                "logging_steps": 1,
                "precision": "bf16" if cuda else "fp32",
                "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
            },
        }
    )
    records = list(read_source(recipe.data.sources[0]))
    meter = Meter()
    trained = run_training(recipe, records, [], args.out, callbacks=[meter])
    result = meter.result()
    result["adapter"] = str(trained.final_dir)
    if cuda:
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result.update(framework="sftlab", version=sftlab.__version__, mode=args.mode)
    emit(result)


if __name__ == "__main__":
    main()
