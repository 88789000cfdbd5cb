"""Tokenize many records: in parallel processes, with an on-disk cache keyed by a fingerprint.

The key covers the records, the tokenizer (vocabulary, merges, special tokens and
chat template) and the render settings that change ids or labels, so a second run
with the same inputs loads the samples instead of rendering them again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.data.record import Conversation, record_from_dict
from sftlab.recipe.sections.render import RenderSection
from sftlab.render.errors import EmptyLabelsError, RenderError, TooLongError
from sftlab.render.sample import RenderedSample, render_conversation, render_samples
from sftlab.utils.atomic import atomic_path, write_json
from sftlab.utils.progress import make_progress

# Settings that change ids or labels (packing, num_proc... do not).
_KEY_FIELDS = (
    "template",
    "template_kwargs",
    "train_on",
    "train_tool_calls",
    "max_length",
    "truncation",
    "on_empty_labels",
    "reasoning",
    "history_rewrite",
    "train_reasoning",
    "drop_empty_think",
)
_MAX_IDS = 50  # record ids listed per problem in the stats
CACHE_VERSION = 2


@dataclass
class TokenizedData:
    """Rendered samples plus the accounting of what happened to every record."""

    samples: list[RenderedSample]
    stats: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    from_cache: bool = False


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of what decides ids: the tokenizer model (vocab, merges, normaliser), special tokens, template."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(
        (
            backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
        ).encode()
    )
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    h.update(json.dumps(getattr(tokenizer, "chat_template", None), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def data_fingerprint(record_dicts: list[dict], tokenizer, cfg: RenderSection) -> str:
    h = hashlib.sha256(f"sftlab-render-v{CACHE_VERSION}\0".encode())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    h.update(json.dumps({k: getattr(cfg, k) for k in _KEY_FIELDS}, sort_keys=True).encode())
    for d in record_dicts:
        h.update(json.dumps(d, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


# One record's outcome: its samples, the drop reason (or None), the record id, and how it was rendered
# ("whole", "per_turn", "last_turn", or None for text and dropped records).
Outcome = tuple[list[RenderedSample], str | None, str | None, str | None]


def _render_one(record, tokenizer, cfg) -> Outcome:
    """A record's samples (several when the template rewrites history); non-prefix-stable templates and
    bad roles raise."""
    try:
        if isinstance(record, Conversation):
            out = render_conversation(record, tokenizer, cfg)
            return out.samples, None, None, out.mode
        return render_samples(record, tokenizer, cfg), None, None, None
    except TooLongError as err:
        return [], err.reason, err.record_id, None
    except EmptyLabelsError as err:
        if cfg.on_empty_labels == "error":
            raise
        return [], err.reason, err.record_id, None


# Worker state: one tokenizer per process, set once by the pool initializer.
_WORKER: dict[str, Any] = {}


def _init_worker(tokenizer, cfg_json: str) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER["tokenizer"] = tokenizer
    _WORKER["cfg"] = RenderSection.model_validate_json(cfg_json)


def _work(chunk: list[dict]) -> list[Outcome]:
    return [_render_one(record_from_dict(d), _WORKER["tokenizer"], _WORKER["cfg"]) for d in chunk]


def _stats(n_records: int, results: list[Outcome], samples: list[RenderedSample]) -> dict[str, Any]:
    reasons = Counter(r for _, r, _, _ in results if r)
    modes = Counter(m for _, _, _, m in results if m)
    ids: dict[str, list] = {}
    for _, r, rid, _ in results:
        if r and len(ids.setdefault(r, [])) < _MAX_IDS:
            ids[r].append(rid)
    total = sum(len(s) for s in samples)
    trained = sum(s.num_trained for s in samples)
    return {
        "records": n_records,
        "samples": len(samples),
        "rendered_per_turn": modes.get("per_turn", 0) + modes.get("last_turn", 0),
        "truncated": sum(s.truncated for s in samples),
        "dropped_too_long": reasons.get("dropped_too_long", 0),
        "no_trained_tokens": reasons.get("no_trained_tokens", 0),
        "dropped_ids": ids,
        "tokens": total,
        "trained_tokens": trained,
        "trained_token_share": trained / total if total else 0.0,
        "mean_length": total / len(samples) if samples else 0.0,
        "max_length": max((len(s) for s in samples), default=0),
    }


def _load_cache(path: Path) -> TokenizedData | None:
    meta = path / "stats.json"
    if not meta.is_file():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(path / "samples.parquet")
    rows = table.to_pylist()
    samples = [RenderedSample(**row) for row in rows]
    stats = json.loads(meta.read_text(encoding="utf-8"))
    return TokenizedData(samples, stats, path.name, from_cache=True)


def _save_cache(path: Path, data: TokenizedData) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(path, is_dir=True) as tmp:
        table = pa.Table.from_pylist(
            [s.to_dict() for s in data.samples],
            schema=pa.schema(
                [
                    ("input_ids", pa.list_(pa.int32())),
                    ("labels", pa.list_(pa.int32())),
                    ("weights", pa.list_(pa.float32())),
                    ("id", pa.string()),
                    ("source", pa.string()),
                    ("task", pa.string()),
                    ("truncated", pa.bool_()),
                ]
            ),
        )
        pq.write_table(table, tmp / "samples.parquet")
        write_json(tmp / "stats.json", data.stats)


def tokenize_records(
    records,
    tokenizer,
    cfg: RenderSection | None = None,
    *,
    cache_dir: str | Path | None = None,
    num_proc: int | None = None,
) -> TokenizedData:
    """Render every record; drop and count over-long ones (and empty ones under ``on_empty_labels: drop``).

    A record can give several samples (one per trained turn when its template rewrites history,
    ``render.history_rewrite: per_turn``): ``stats["samples"]`` counts samples, ``stats["records"]``
    records, ``stats["rendered_per_turn"]`` the records rendered turn by turn.

    ``num_proc`` (default ``cfg.num_proc``) processes each get their own copy of the
    tokenizer. With ``cache_dir`` the result is stored as ``<cache_dir>/<fingerprint>/``
    and loaded on the next call with the same inputs.
    """
    cfg = cfg or RenderSection()
    num_proc = num_proc or cfg.num_proc
    records = list(records)
    dicts = [r.to_dict() for r in records] if (cache_dir or num_proc > 1) else None
    fp = None
    if cache_dir is not None:
        fp = data_fingerprint(dicts, tokenizer, cfg)
        cached = _load_cache(Path(cache_dir) / fp)
        if cached is not None:
            return cached
    results: list[Outcome] = []
    with make_progress() as progress:
        task = progress.add_task("tokenize", total=len(records), info="")
        if num_proc > 1 and len(records) > 1:
            size = max(1, min(1000, len(records) // (num_proc * 4) or 1))
            chunks = [dicts[i : i + size] for i in range(0, len(dicts), size)]
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(
                num_proc, initializer=_init_worker, initargs=(tokenizer, cfg.model_dump_json())
            ) as pool:
                for part in pool.imap(_work, chunks):
                    results.extend(part)
                    progress.advance(task, len(part))
        else:
            for record in records:
                results.append(_render_one(record, tokenizer, cfg))
                progress.advance(task)
    samples = [s for group, _, _, _ in results for s in group]
    data = TokenizedData(samples, _stats(len(records), results, samples), fp)
    if cache_dir is not None:
        _save_cache(Path(cache_dir) / fp, data)
    return data


__all__ = ["RenderError", "TokenizedData", "tokenize_records"]
