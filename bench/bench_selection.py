"""Selection on a real pool: spread vs a random subset and code share, before-style settings vs the defaults.

Reads the first ``--lines`` conversations of the ShareGPT V3 dump (``make venv``; see
``tests/real_sharegpt.py``) with the usual repairs, scores them with the heuristics and
selects ``--budget`` records with MiniLM embeddings three ways: the former defaults
(``score: heuristic``, fixed ``max_similarity: 0.9``, no cluster cap), today's defaults
(``score: auto``, calibrated ceiling, one record per source conversation), and
today's defaults with ``stratify: domain``. Each text is embedded once.

    .venv/bin/python bench/bench_selection.py --lines 2000 --budget 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CONFIGS = {
    "former defaults": {"score": "heuristic", "max_similarity": 0.9, "per_cluster": None},
    "defaults": {},
    "defaults + stratify: domain": {"stratify": "domain"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--budget", type=int, default=200)
    args = parser.parse_args()

    from real_sharegpt import write_sharegpt_jsonl
    from sftlab.curate.embeddings import MemoEmbedder, load_embedder
    from sftlab.curate.steps.base import StepStats
    from sftlab.curate.steps.registry import build_step
    from sftlab.curate.steps.scoring import heuristic_scores
    from sftlab.data.io import RecordStream

    with tempfile.TemporaryDirectory() as tmp:
        path = write_sharegpt_jsonl(args.lines, Path(tmp) / "sharegpt.jsonl")
        repairs = ("drop_leading_assistant", "keep_valid_prefix")
        records = list(RecordStream(path, format="sharegpt", on_error="skip", repairs=repairs))
    for r in records:
        r.meta.extra["scores"] = heuristic_scores(r)
    print(f"{args.lines} lines → {len(records)} records, budget {args.budget}, MiniLM")
    embedder = MemoEmbedder(load_embedder("minilm"))
    for name, cfg in CONFIGS.items():
        step = build_step({"type": "select", "budget": args.budget, "on_not_diverse": "warn", **cfg})
        step.embedder = embedder
        stats = StepStats("select")
        start = time.perf_counter()
        list(step.run(records, stats))
        d, seconds = step.details, time.perf_counter() - start
        spread, code = d["embedding_spread"], d["domains"]["code"]
        ceiling = d.get("ceiling", {}).get("value", cfg.get("max_similarity"))
        print(
            f"{name}: spread {spread['selected']} vs random {spread['random_same_size']} (pool {spread['pool']}); "
            f"code {code['selected_share']}% of the selection vs {code['pool_share']}% of the pool; "
            f"ceiling {ceiling}; most from one conversation {d['source_clusters']['largest_in_selection']}; "
            f"rejected {dict(stats.rejected)}; {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
