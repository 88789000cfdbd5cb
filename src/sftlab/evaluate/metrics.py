"""Task metrics on generated answers: pure functions of (predictions, references).

Every metric returns a number in [0, 1] (BLEU and chrF on sacrebleu's 0–100
scale) so base and fine-tuned models sit side by side in one table.

>>> exact_match(["Paris", "4 "], ["Paris", "5"])
0.5
>>> macro_f1(["pos", "neg", "pos"], ["pos", "neg", "neg"], labels=["pos", "neg"])
0.6666666666666666
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sftlab.errors import RecipeError
from sftlab.recipe.sections.evaluation import custom_metric_problem

OTHER = "<other>"
"""Confusion-matrix column for predictions outside the label set."""


def normalize(text: str) -> str:
    """Lower-case, collapse whitespace, drop surrounding punctuation and quotes.

    >>> normalize('  "Positive." ')
    'positive'
    """
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.strip(" .,;:!?\"'`")


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of answers equal to the reference after stripping surrounding whitespace."""
    return _mean(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of answers equal to the reference after :func:`normalize` (case, spaces, punctuation)."""
    return _mean(normalize(p) == normalize(r) for p, r in zip(predictions, references, strict=True))


def confusion_matrix(
    predictions: Sequence[str], references: Sequence[str], labels: Sequence[str]
) -> tuple[list[str], list[list[int]]]:
    """Rows = reference label, columns = predicted label (plus ``<other>``), compared normalised.

    >>> confusion_matrix(["a", "b", "zzz"], ["a", "a", "b"], ["a", "b"])
    (['a', 'b', '<other>'], [[1, 1, 0], [0, 0, 1]])
    """
    keys = [normalize(label) for label in labels]
    columns = list(labels) + [OTHER]
    matrix = [[0] * len(columns) for _ in labels]
    for pred, ref in zip(predictions, references, strict=True):
        ref_key = normalize(ref)
        if ref_key not in keys:
            continue  # a reference outside the label set has no row; in_label_set reports it
        pred_key = normalize(pred)
        col = keys.index(pred_key) if pred_key in keys else len(labels)
        matrix[keys.index(ref_key)][col] += 1
    return columns, matrix


def macro_f1(predictions: Sequence[str], references: Sequence[str], labels: Sequence[str]) -> float | None:
    """Unweighted mean of per-label F1 over the labels that occur (as reference or answer); answers outside
    the label set count as wrong for every label.

    A label no record has and no answer gives (another task's label, in a mixed eval set) is left out:
    its F1 is undefined, and counting it as 0 would cap the score below 1 for a perfect model.

    ``None`` (not applicable) when no reference is a label.

    >>> macro_f1(["yes", "no"], ["yes", "no"], ["yes", "no", "maybe"])
    1.0
    """
    if not _labelled(references, labels):
        return None
    _, matrix = confusion_matrix(predictions, references, labels)
    scores = []
    for i in range(len(labels)):
        tp = matrix[i][i]
        fn = sum(matrix[i]) - tp
        fp = sum(row[i] for row in matrix) - tp
        denom = 2 * tp + fp + fn
        if denom:
            scores.append(2 * tp / denom)
    return sum(scores) / len(scores) if scores else 0.0


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults, 0–100)."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults, 0–100)."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenisation: lower case, every run of characters other than a-z and 0-9 is a
    space (so punctuation never sticks to a word, and text in other scripts has no tokens: use chrF there).

    >>> rouge_tokens("The cat sat on the mat.")
    ['the', 'cat', 'sat', 'on', 'the', 'mat']
    """
    return _NON_ALNUM.sub(" ", text.lower()).split()


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (longest common token subsequence), equal to ``rouge-score``'s ``rougeL`` f-measure
    (no stemming): same tokens, and 0 when either side has none (tested on 1,000 pairs).

    >>> rouge_l(["The cat sat on the mat."], ["the cat sat on the mat"])
    1.0
    >>> rouge_l(["the cat sat"], ["the cat sat down"])
    0.8571428571428571
    """
    from rapidfuzz.distance import LCSseq

    scores = []
    for pred, ref in zip(predictions, references, strict=True):
        p, r = rouge_tokens(pred), rouge_tokens(ref)
        lcs = LCSseq.similarity(p, r) if p and r else 0
        scores.append(2 * lcs / (len(p) + len(r)) if lcs else 0.0)
    return _mean(scores)


def parse_json(text: str) -> Any:
    """The JSON value in ``text`` (a surrounding ```json fence is allowed); raises ValueError if none."""
    text = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
    if fence:
        text = fence.group(1)
    return json.loads(text)


def json_valid(predictions: Sequence[str], references: Sequence[str] | None = None) -> float | None:
    """Share of answers that parse as JSON — among the records whose reference is a JSON object or array;
    ``None`` (not applicable) when references are given and none is.

    >>> json_valid(['{"a": 1}', "positive"], ['{"a": 2}', "negative"])
    1.0
    >>> json_valid(["yes"], ["no"]) is None
    True
    """
    if references is not None:
        predictions = [p for p, r in zip(predictions, references, strict=True) if _is_document(r)]
        if not predictions:
            return None
    return _mean(_parses(p) for p in predictions)


def json_field_match(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """Share of the reference objects' top-level fields reproduced with equal values, micro-averaged;
    ``None`` when no reference is a JSON object or array.

    >>> json_field_match(['{"a": 1, "b": 2}'], ['{"a": 1, "b": 3}'])
    0.5
    """
    hit = total = 0
    for pred, ref in zip(predictions, references, strict=True):
        if not _is_document(ref):
            continue  # a reference that is no JSON object or array has no fields to match
        want = parse_json(ref)
        if not isinstance(want, dict):
            want = {"": want}
        try:
            got = parse_json(pred)
        except ValueError:
            got = {}
        if not isinstance(got, dict):
            got = {"": got}
        total += len(want)
        hit += sum(1 for k, v in want.items() if k in got and got[k] == v)
    return hit / total if total else None


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Problems of ``value`` against a JSON-schema subset: type, required, properties, items, enum.

    >>> schema_errors({"a": "x"}, {"type": "object", "required": ["a", "b"]})
    ['$: missing required field b']
    """
    errors: list[str] = []
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(checks.get(k, lambda v: True)(value) for k in kinds):
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        errors += [
            f"{path}: missing required field {k}" for k in schema.get("required", []) if k not in value
        ]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def json_schema_match(predictions: Sequence[str], schema: dict[str, Any]) -> float:
    """Share of answers that parse as JSON and satisfy ``schema``."""
    ok = []
    for pred in predictions:
        try:
            ok.append(not schema_errors(parse_json(pred), schema))
        except ValueError:
            ok.append(False)
    return _mean(ok)


def in_label_set(
    predictions: Sequence[str], labels: Sequence[str], references: Sequence[str] | None = None
) -> float | None:
    """Share of answers that are one of the labels (normalised) — is the model answering in format?

    With ``references``, only records whose reference is a label count (a JSON task in the same
    eval set is not expected to answer with a label); ``None`` when no reference is a label.

    >>> in_label_set(["yes", "{}", "maybe"], ["yes", "no"], ["no", "{}", "yes"])
    0.5
    """
    keys = {normalize(label) for label in labels}
    if references is not None:
        predictions = [p for p, r in zip(predictions, references, strict=True) if normalize(r) in keys]
        if not predictions:
            return None
    return _mean(normalize(p) in keys for p in predictions)


def load_custom_metric(spec: str) -> Callable[[Sequence[str], Sequence[str]], Any]:
    """Import ``module:function`` or ``file.py:function`` (the recipe's ``evaluation.custom_metric``).

    The function must be defined in that module (not imported into it from elsewhere).
    """
    problem = custom_metric_problem(spec)
    if problem:
        raise RecipeError([f"evaluation.custom_metric: {problem}"])
    module_name, _, func_name = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            module = _module_from_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise RecipeError(
            [f"evaluation.custom_metric: cannot import '{module_name}' ({err}); is it on PYTHONPATH?"]
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise RecipeError([f"evaluation.custom_metric: '{module_name}' has no function '{func_name}'"])
    if getattr(func, "__module__", None) != module.__name__:
        raise RecipeError(
            [
                f"evaluation.custom_metric: '{func_name}' is not defined in '{module_name}' "
                f"(it comes from '{getattr(func, '__module__', '?')}'); name the function where it is defined"
            ]
        )
    return func


def _module_from_file(path: Path):
    import importlib.util

    if not path.is_file():
        raise ImportError(f"file not found: {path}")
    name = f"sftlab_custom_metric_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_schema(spec: dict[str, Any] | str | None) -> dict[str, Any] | None:
    """The recipe's ``evaluation.json_schema``: inline, or read from a .json file."""
    if spec is None or isinstance(spec, dict):
        return spec
    path = Path(spec)
    if not path.is_file():
        raise RecipeError([f"evaluation.json_schema: file not found: {spec}"])
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RecipeError(
            [f"evaluation.json_schema: {spec}:{err.lineno}: invalid JSON ({err.msg})"]
        ) from None


def compute_metrics(
    names: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    labels: Sequence[str] = (),
    schema: dict[str, Any] | None = None,
    custom: Callable[[Sequence[str], Sequence[str]], Any] | None = None,
) -> dict[str, float | None]:
    """The named metrics (plus ``custom``) as ``{name: value}``; ``None`` where a metric does not apply to
    these records (label metrics without a labelled reference, JSON metrics without a JSON reference)."""
    out: dict[str, float | None] = {}
    for name in names:
        if name == "exact_match":
            out[name] = exact_match(predictions, references)
        elif name == "accuracy":
            out[name] = accuracy(predictions, references)
        elif name == "macro_f1":
            out[name] = macro_f1(predictions, references, labels) if labels else None
        elif name == "bleu":
            out[name] = bleu(predictions, references)
        elif name == "chrf":
            out[name] = chrf(predictions, references)
        elif name == "rouge_l":
            out[name] = rouge_l(predictions, references)
        elif name == "json_valid":
            out[name] = json_valid(predictions, references)
        elif name == "json_schema":
            if schema is None:
                raise RecipeError(
                    ["evaluation.metrics has json_schema but evaluation.json_schema is not set"]
                )
            out[name] = json_schema_match(predictions, schema)
        elif name == "json_field_match":
            out[name] = json_field_match(predictions, references)
        elif name == "in_label_set":
            out[name] = in_label_set(predictions, labels, references) if labels else None
        else:
            raise RecipeError([f"evaluation.metrics: unknown metric '{name}'"])
    if custom is not None:
        value = custom(list(predictions), list(references))
        if isinstance(value, dict):
            out.update({f"custom.{k}": float(v) for k, v in value.items()})
        else:
            out["custom"] = float(value)
    return out


def _is_document(text: str) -> bool:
    """A JSON object or array (``"42"`` or ``"true"`` parse too, but nobody asks for them as JSON output)."""
    try:
        return isinstance(parse_json(text), dict | list)
    except ValueError:
        return False


def _labelled(references: Sequence[str], labels: Sequence[str]) -> bool:
    keys = {normalize(label) for label in labels}
    return any(normalize(r) in keys for r in references)


def _parses(text: str) -> bool:
    try:
        parse_json(text)
    except ValueError:
        return False
    return True


def _mean(values: Any) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0
