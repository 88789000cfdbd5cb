"""Which records each stage sees: raw sources, curated files, eval split, general data."""

from __future__ import annotations

from pathlib import Path

from sftlab.data.io import load_jsonl_records, read_source
from sftlab.data.record import Record
from sftlab.data.shards import is_sharded, list_shards
from sftlab.data.sources import SourceSet, read_sources
from sftlab.recipe import Recipe
from sftlab.utils.hashing import file_fingerprint, fingerprint


def source_fingerprints(recipe: Recipe) -> dict[str, str]:
    """Content hashes of every local data file, so an edited file re-runs the stages that read it."""
    from sftlab.data.llamafactory import source_files

    out = {}
    for src in [*recipe.data.sources, *recipe.data.eval_sources]:
        for name in source_files(src):  # a dataset_info.json entry: the index and the data file it names
            path = Path(name)
            if is_sharded(name) and "://" not in name:  # a folder or glob: every shard's content
                out[name] = fingerprint({p: file_fingerprint(p) for p in list_shards(name)})
            else:
                out[name] = file_fingerprint(path) if path.exists() else "remote"
    return out


def read_raw(recipe: Recipe, staging_dir: Path) -> SourceSet:
    """Every training source as one stream; reading is accounted as the curation's first step."""
    return read_sources(recipe.data, staging_dir)


def curated_records(curation_dir: Path) -> tuple[list[Record], list[Record]]:
    """``(train, validation)`` from the curation folder (validation empty unless a split step ran)."""
    if (curation_dir / "train.jsonl").is_file():
        train = load_jsonl_records(curation_dir / "train.jsonl")
        val = (
            load_jsonl_records(curation_dir / "validation.jsonl")
            if (curation_dir / "validation.jsonl").is_file()
            else []
        )
        return train, val
    from sftlab.curate.shards import load_kept

    return load_kept(curation_dir), []  # kept.jsonl, or kept/index.json and its shards


def eval_records(
    recipe: Recipe, train: list[Record], validation: list[Record]
) -> tuple[list[Record], list[Record]]:
    """``(train, eval)``: eval sources if given, else the curated validation split, else a stratified hold-out."""
    if recipe.data.eval_sources:
        held = [
            r
            for src in recipe.data.eval_sources
            for r in read_source(src, on_error="fail", repairs=recipe.data.repair)
        ]
        return train, held
    if validation:
        return train, validation
    from sftlab.train.split import stratified_split

    return stratified_split(train, recipe.data.eval_fraction, seed=recipe.seed)


def general_sources(recipe: Recipe) -> set[str]:
    """Names of sources marked ``general: true`` (replay data; also the EWC Fisher data)."""
    return {src.name or Path(src.path).stem for src in recipe.data.sources if src.general}
