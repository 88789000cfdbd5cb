"""``data:`` — where the raw records come from and how they are read."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from sftlab.recipe.base import Section

FormatName = Literal["auto", "alpaca", "sharegpt", "messages", "text", "sftlab"]


def _refuse(err: Exception) -> PydanticCustomError:
    """A data-layer refusal as a recipe problem, its one line kept as written."""
    return PydanticCustomError("data_source", str(err))


class SourceSection(Section):
    path: str
    """File (.json/.jsonl/.parquet/.csv), saved HF dataset folder, hub dataset name, or a LLaMA-Factory
    ``dataset_info.json`` (or the folder holding it) read with ``dataset``. ``file_name`` (LLaMA-Factory's
    key) is accepted for it. A folder or glob of .jsonl / .parquet shards (``data/train/``,
    ``data/part-*.parquet``, fsspec URLs) reads as one file joined in sorted order."""
    dataset: str | list[str] | None = None
    """Entry of the ``dataset_info.json`` at ``path`` to read; a list makes one source per entry, each
    named after its entry. The entry's ``file_name``, ``formatting``, ``columns``, ``tags``, ``split``
    and ``num_samples`` apply; what this source sets itself (``format``, ``mapping``, ``limit``) wins."""
    name: str | None = None
    """Short name used in reports and per-source metrics; defaults to the dataset entry, else the file stem."""
    format: FormatName = "auto"
    """Record format; ``auto`` detects it from the first records. ``formatting`` (LLaMA-Factory's key) is
    accepted for it."""
    mapping: dict[str, str | dict[str, str]] = Field(default_factory=dict)
    """Column/role renames with LLaMA-Factory's ``dataset_info.json`` keys, flat (``prompt: question``,
    ``messages: dialog``, ``role_tag: speaker``, ``user_tag: Human``) or nested as there (``columns: {...}``,
    ``tags: {...}``; those two may also be written directly on the source); ``reasoning_tag: think`` splits
    a leading ``<think>…</think>`` of assistant answers into reasoning (never done unless asked)."""
    substitute: dict[str, str] = Field(default_factory=dict)
    """Values for ``{{name}}``-style variables in the texts of this source (LLaMA-Factory's ``identity.json``:
    ``{name: Ledger, author: Acme}``); a variable with no value here stays as written."""
    split: str | None = None
    """Split of a Hugging Face dataset (``train`` if omitted)."""
    weight: float = Field(default=1.0, ge=0)
    """Sampling weight when mixing sources during training."""
    task: str | None = None
    """Task name given to every record of this source (for stratified splits and metrics)."""
    general: bool = False
    """General-purpose data mixed in to keep general ability (counted by ``doctor``)."""
    limit: int | None = Field(default=None, ge=1)
    """Read at most this many records (the first ones). ``num_samples`` (LLaMA-Factory's key) is accepted
    for it."""

    @model_validator(mode="before")
    @classmethod
    def _llamafactory_keys(cls, data: Any) -> Any:
        """A source may be written as a LLaMA-Factory dataset entry; its keys become ours (one table, in
        :mod:`sftlab.data.llamafactory`), and a single dataset names the source."""
        if not isinstance(data, dict):
            return data
        from sftlab.data.llamafactory import RECIPE_KEYS, source_fields
        from sftlab.errors import DataError

        if any(k in data for k in RECIPE_KEYS):
            try:
                data = source_fields(data)
            except DataError as err:
                raise _refuse(err) from None
        dataset = data.get("dataset")
        if isinstance(dataset, list) and len(dataset) == 1:
            data = {**data, "dataset": dataset[0]}
        if isinstance(data.get("dataset"), str) and data.get("name") is None:
            data = {**data, "name": data["dataset"]}
        path = data.get("path")
        if data.get("name") is None and isinstance(path, str) and ("://" in path or set("*?[") & set(path)):
            from sftlab.data.shards import shard_stem

            data = {**data, "name": shard_stem(path)}  # a glob or URL of shards: named as its records are
        return data

    @field_validator("mapping")
    @classmethod
    def _known_mapping_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Unknown or unsupported keys fail when the recipe loads, not when the data is read."""
        from sftlab.data.mapping import Mapping
        from sftlab.errors import DataError

        try:
            Mapping.parse(value, where="")
        except DataError as err:
            raise _refuse(err) from None
        return value

    @model_validator(mode="after")
    def _dataset_names(self) -> SourceSection:
        if isinstance(self.dataset, list):
            if not self.dataset or len(set(self.dataset)) != len(self.dataset):
                raise PydanticCustomError("data_source", "dataset: give one or more different entry names")
            if self.name is not None:
                raise PydanticCustomError(
                    "data_source",
                    "name: a source with several datasets becomes one source per dataset, each named "
                    "after it; remove name (or list the datasets as separate sources)",
                )
        return self


def _one_source_per_dataset(sources: list[SourceSection]) -> list[SourceSection]:
    """``dataset: [a, b]`` reads as two sources named ``a`` and ``b``, so each is read, counted and weighted alone."""
    out: list[SourceSection] = []
    for source in sources:
        if isinstance(source.dataset, list):
            out += [source.model_copy(update={"dataset": d, "name": d}) for d in source.dataset]
        else:
            out.append(source)
    return out


class DataSection(Section):
    sources: list[SourceSection] = Field(default_factory=list)
    """Training data sources, read in order."""
    eval_sources: list[SourceSection] = Field(default_factory=list)
    """Held-out evaluation data; if empty, ``eval_fraction`` of the training data is held out."""
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Share held out for evaluation (stratified by task) when no ``eval_sources`` are given."""
    on_error: Literal["fail", "skip"] = "fail"
    """``fail`` stops at the first bad record naming file:line; ``skip`` writes it to the rejects file."""
    repair: list[Literal["drop_leading_assistant", "keep_valid_prefix"]] = Field(
        default_factory=lambda: ["drop_leading_assistant", "keep_valid_prefix"]
    )
    """Keep the valid part of a conversation reading would reject whole (public dumps are cut from longer
    sessions): ``drop_leading_assistant`` drops assistant turns before the first user turn (a greeting whose
    question was lost); ``keep_valid_prefix`` keeps the longest valid prefix ending in an answer when a later
    turn is broken. Each repair is counted in the read step and noted in ``meta.provenance.read_repairs``;
    ``[]`` rejects such records whole."""

    @field_validator("sources", "eval_sources")
    @classmethod
    def _split_datasets(cls, sources: list[SourceSection]) -> list[SourceSection]:
        return _one_source_per_dataset(sources)
