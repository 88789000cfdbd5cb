"""LLaMA-Factory datasets as sftlab sources: ``dataset_info.json`` entries, and the same keys in a recipe.

A LLaMA-Factory user keeps a folder with a ``dataset_info.json`` naming each
dataset and saying how to read it; a recipe source points at that file (or the
folder) and names the entries to read, each becoming a source of its own::

    data:
      sources:
        - path: data/dataset_info.json          # or data/
          dataset: [alpaca_en_demo, glaive_toolcall_en_demo]

A source may also be written as an entry, keys and all (``file_name``,
``formatting``, ``columns``, ``tags``, ``num_samples``). Either way each key
means what it means to LLaMA-Factory, or is refused in one line naming the
dataset, the key and the fix:

=====================  ==========================================================
``file_name``          ``path``, relative to the ``dataset_info.json`` folder
``formatting``         ``format``: ``alpaca`` (LLaMA-Factory's default) or ``sharegpt``
``columns``, ``tags``  ``mapping`` (multimodal and preference columns refused)
``split``              ``split`` of a saved HF dataset (a plain file has only ``train``)
``num_samples``        ``limit``: the first N records (LLaMA-Factory samples N at random)
``file_sha1``          ignored, as LLaMA-Factory ignores it
``ranking: true``      refused: preference data
``hf_hub_url`` …       refused: hub, ModelScope, script and cloud datasets are not fetched
=====================  ==========================================================

>>> entry_fields({"file_name": "glaive.json", "formatting": "sharegpt",
...               "columns": {"messages": "conversations", "tools": "tools"}, "num_samples": 100}, where="glaive")
{'path': 'glaive.json', 'format': 'sharegpt', 'mapping': {'messages': 'conversations', 'tools': 'tools'}, 'limit': 100}
>>> entry_fields({"hf_hub_url": "llamafactory/alpaca_en"}, where="dataset_info.json: alpaca_en")
Traceback (most recent call last):
...
sftlab.errors.DataError: dataset_info.json: alpaca_en: hf_hub_url: sftlab does not download datasets; download it (huggingface-cli download --repo-type dataset llamafactory/alpaca_en --local-dir DIR) and set file_name to the file, or use path: llamafactory/alpaca_en (read through the Hugging Face cache)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sftlab.data import containers
from sftlab.data.mapping import COLUMN_KEYS, TAG_KEYS, UNSUPPORTED_KEYS, Mapping, flatten
from sftlab.errors import DataError

if TYPE_CHECKING:
    from sftlab.recipe.sections.data import SourceSection

INFO_FILE = "dataset_info.json"

#: Entry keys that name where a dataset lives when it is not a local file, with the fix for each.
REMOTE_KEYS: dict[str, str] = {
    "hf_hub_url": "sftlab does not download datasets; download it (huggingface-cli download --repo-type "
    "dataset {value} --local-dir DIR) and set file_name to the file, or use path: {value} (read through "
    "the Hugging Face cache)",
    "ms_hub_url": "ModelScope datasets are not fetched; download {value} and set file_name to the file",
    "om_hub_url": "Modelers datasets are not fetched; download {value} and set file_name to the file",
    "script_url": "loading scripts are not run; run {value} once, save the data as JSON/Parquet "
    "and set file_name to it",
    "cloud_file_name": "cloud files are not fetched; copy {value} here and set file_name to the copy",
}
#: Entry keys LLaMA-Factory uses only with a hub dataset.
HUB_ONLY_KEYS = ("subset", "folder", "revision")
#: Entry keys that become source fields (see the table above).
ENTRY_KEYS = ("file_name", "formatting", "columns", "tags", "split", "num_samples", "ranking", "file_sha1")
#: Keys that mark a recipe source as written the LLaMA-Factory way (``split`` is a source field of its own).
RECIPE_KEYS = tuple(k for k in (*ENTRY_KEYS, *REMOTE_KEYS, *HUB_ONLY_KEYS) if k != "split")
TAG_NAMES = (*TAG_KEYS, "role_tag", "content_tag")


def entry_fields(entry: dict[str, Any], *, where: str = "") -> dict[str, Any]:
    """Source fields (``path``, ``format``, ``mapping``, ``split``, ``limit``) for one LLaMA-Factory entry."""
    pre = f"{where}: " if where else ""
    if not isinstance(entry, dict):
        raise DataError(f"{pre}expected an object of dataset keys, got {type(entry).__name__}")
    for key, fix in REMOTE_KEYS.items():
        if key in entry:
            raise DataError(f"{pre}{key}: {fix.format(value=entry[key])}")
    for key in entry:
        if key in HUB_ONLY_KEYS:
            raise DataError(
                f"{pre}{key}: used only with hub datasets, which sftlab does not fetch; remove it"
            )
        if key not in ENTRY_KEYS:
            near = difflib.get_close_matches(key, ENTRY_KEYS, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(ENTRY_KEYS)}"
            raise DataError(f"{pre}unknown key '{key}'; {hint}")
    if entry.get("ranking"):
        raise DataError(
            f"{pre}ranking: true is preference data (chosen/rejected), which sftlab does not train on; "
            "use an SFT dataset"
        )
    out: dict[str, Any] = {}
    if "file_name" in entry:
        out["path"] = _string(entry["file_name"], f"{pre}file_name")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise DataError(f"{pre}formatting: expected alpaca or sharegpt, got {formatting!r}")
    out["format"] = formatting
    mapping = _columns_and_tags(entry, pre)
    if mapping:
        out["mapping"] = mapping
    if "split" in entry:
        out["split"] = _string(entry["split"], f"{pre}split")
    if "num_samples" in entry:
        n = entry["num_samples"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"{pre}num_samples: expected a positive whole number, got {n!r}")
        out["limit"] = n
    return out


def _columns_and_tags(entry: dict[str, Any], pre: str) -> dict[str, str]:
    """``columns`` and ``tags`` as one flat mapping; a tag under ``columns`` (or the reverse) is refused."""
    flat: dict[str, str] = {}
    for block, other, misplaced in (
        ("columns", "tags", TAG_NAMES),
        ("tags", "columns", (*COLUMN_KEYS, *UNSUPPORTED_KEYS)),
    ):
        names = entry.get(block, {})
        if not isinstance(names, dict):
            raise DataError(f"{pre}{block}: expected an object of names, got {type(names).__name__}")
        for key in names:
            if key in misplaced:
                raise DataError(f"{pre}{block}.{key}: belongs under {other}; move it there")
        Mapping.parse(names, where=f"{pre}{block}")  # unknown or unsupported names fail here, named
        flat.update(names)
    return flat


def _string(value: Any, what: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise DataError(f"{what}: expected a non-empty string, got {value!r}")


def source_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """A recipe source written with LLaMA-Factory keys, as sftlab source fields (for the recipe schema).

    ``file_name``/``formatting``/``num_samples`` may not repeat ``path``/``format``/``limit``;
    ``columns`` and ``tags`` join ``mapping``.
    """
    lf = {k: raw[k] for k in RECIPE_KEYS if k in raw}
    out = {k: v for k, v in raw.items() if k not in lf}
    fields = entry_fields(lf)
    for ours, theirs in (("path", "file_name"), ("limit", "num_samples")):
        if ours in fields and ours in out:
            raise DataError(f"{theirs}: LLaMA-Factory's name for {ours}; give only one of them")
    if "formatting" not in lf:
        fields.pop("format")  # LLaMA-Factory's default applies to its entries, not to every source
    elif out.get("format", "auto") not in ("auto", fields["format"]):
        raise DataError(f"formatting: {fields['format']} contradicts format: {out['format']}; give only one")
    if "mapping" in fields:
        mapping = flatten(out.get("mapping"), where="mapping")
        for key, value in fields.pop("mapping").items():
            if mapping.get(key, value) != value:
                raise DataError(f"{key}: given as {value!r} and in mapping as {mapping[key]!r}; keep one")
            mapping[key] = value
        out["mapping"] = mapping
    return {**out, **fields}


@dataclass
class Resolved:
    """Where and how to read one source, after following a ``dataset_info.json`` entry."""

    path: str
    format: str = "auto"
    mapping: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    limit: int | None = None
    name: str | None = None


def info_file(path: str | Path) -> Path | None:
    """The ``dataset_info.json`` that ``path`` is or holds; ``None`` for a data file or a saved HF dataset.

    A folder saved by ``datasets.save_to_disk`` also holds a ``dataset_info.json``
    (its features); its ``state.json``/``dataset_dict.json`` tells it apart.
    """
    p = Path(path)
    if p.name == INFO_FILE and p.is_file():
        return p
    if p.is_dir() and (p / INFO_FILE).is_file() and not containers.is_saved_dataset(p):
        return p / INFO_FILE
    return None


def load_info(info: Path) -> dict[str, Any]:
    """The entries of a ``dataset_info.json``, by dataset name."""
    import orjson

    try:
        data = orjson.loads(info.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{info}: not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict):
        raise DataError(f"{info}: expected an object of datasets by name, got {type(data).__name__}")
    return data


def resolve(
    path: str,
    dataset: str | list[str] | None = None,
    *,
    format: str = "auto",
    mapping: dict[str, Any] | None = None,
    split: str | None = None,
    limit: int | None = None,
    name: str | None = None,
) -> Resolved:
    """Follow ``path`` + ``dataset`` to a data file; the caller's own settings win over the entry's."""
    ours = Resolved(path, format, flatten(mapping), split, limit, name)
    info = info_file(path)
    if dataset is None:
        if info is not None:
            names = ", ".join(list(load_info(info))[:8])
            raise DataError(
                f"{path}: a LLaMA-Factory dataset_info.json; name the entry to read with dataset: NAME "
                f"(recipe) or --dataset NAME (CLI); entries: {names}"
            )
        return _pretraining(ours)
    if isinstance(dataset, list):
        if len(dataset) != 1:
            raise DataError(f"{path}: dataset: {dataset}: give one name here (a recipe source splits a list)")
        dataset = dataset[0]
    if info is None:
        raise DataError(
            f"{path}: dataset: {dataset} needs path to be a LLaMA-Factory dataset_info.json or its folder"
        )
    return _pretraining(_entry(info, dataset, ours))


def _entry(info: Path, dataset: str, ours: Resolved) -> Resolved:
    entries = load_info(info)
    if dataset not in entries:
        near = difflib.get_close_matches(dataset, list(entries), n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"entries: {', '.join(list(entries)[:8])}"
        raise DataError(f"{info}: no dataset '{dataset}'; {hint}")
    where = f"{info}: {dataset}"
    fields = entry_fields(entries[dataset], where=where)
    if "path" not in fields:
        raise DataError(f"{where}: no file_name; set file_name to the data file in {info.parent}")
    path = info.parent / fields["path"]
    if not path.exists():
        raise DataError(f"{where}: file_name: {path} not found")
    if path.suffix == ".txt":
        raise DataError(
            f"{where}: file_name: {path.name}: LLaMA-Factory reads a .txt one line per record, sftlab one "
            'paragraph per record; convert it to JSONL ({"text": ...} per line) and point file_name at that'
        )
    if path.is_dir() and not containers.is_saved_dataset(path):
        raise DataError(
            f"{where}: file_name: {path} is a folder of files; sftlab reads one file per source, "
            "so give each file an entry of its own"
        )
    split = ours.split or fields.get("split")
    if split not in (None, "train") and not path.is_dir():
        raise DataError(f"{where}: split: {split}: a plain file has only the train split; remove split")
    return Resolved(
        path=str(path),
        format=ours.format if ours.format != "auto" else fields["format"],
        mapping={**fields.get("mapping", {}), **ours.mapping},
        split=split,
        limit=ours.limit or fields.get("limit"),
        name=ours.name or dataset,
    )


def _pretraining(r: Resolved) -> Resolved:
    """LLaMA-Factory's pre-training entry names only ``prompt`` (``columns: {prompt: text}``): plain text.

    The same entry shape is an Alpaca file whose response column keeps its
    default name, so the first row decides: with an ``output`` column it is Alpaca.
    """
    columns = [k for k in r.mapping if k in COLUMN_KEYS]
    if r.format != "alpaca" or columns != ["prompt"]:
        return r
    first = next(
        (item.row for item in containers.read_rows(r.path, containers.container_of(r.path)) if item.row),
        None,
    )
    if first is None or "output" in first:
        return r
    mapping = {k: v for k, v in r.mapping.items() if k != "prompt"}
    return replace(r, format="text", mapping={**mapping, "text": r.mapping["prompt"]})


def resolve_source(source: SourceSection) -> Resolved:
    """A recipe source, following its ``dataset_info.json`` entry when it names a ``dataset``."""
    return resolve(
        source.path,
        source.dataset,
        format=source.format,
        mapping=source.mapping,
        split=source.split,
        limit=source.limit,
        name=source.name,
    )


def source_files(source: SourceSection) -> list[str]:
    """The files a source reads (its ``dataset_info.json`` and the entry's data file), for fingerprints."""
    info = info_file(source.path) if source.dataset is not None else None
    if info is None:
        return [source.path]
    return [str(info), resolve_source(source).path]
