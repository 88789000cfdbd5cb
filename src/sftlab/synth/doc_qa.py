"""Document to question/answer pairs, each checked by back-translation.

::

    documents ──split (headings, paragraphs, char budget, overlap)──▶ chunks
      ──teacher as <persona>: "N Alpaca pairs as JSON"──▶ pairs (fenced/partial JSON recovered)
      ──teacher answers each question WITHOUT the chunk──▶ closed-book answer
      ──judge: token F1 / ROUGE-L ≥ threshold, or a yes/no teacher verdict──▶ kept or rejected

The back-translation step drops pairs whose question is ambiguous out of
context or whose answer the teacher cannot reproduce — the usual failure of
document QA (questions like "what does the passage say?").
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import DataError
from sftlab.synth.context import SynthContext, join_prompt, single_turn
from sftlab.synth.echo import first_echo
from sftlab.synth.parse import parse_json_objects, parse_yes_no
from sftlab.synth.similarity import rouge_l, token_f1
from sftlab.utils.hashing import fingerprint

PIPELINE = "doc_qa"
_HEADING = re.compile(r"^#{1,6}\s+\S")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document; ``heading`` is the section it sits in."""

    id: str
    source: str
    heading: str
    text: str


def split_document(text: str, source: str, max_chars: int, overlap_chars: int) -> list[Chunk]:
    """Cut at Markdown headings, then pack paragraphs up to ``max_chars`` with an overlap.

    >>> doc = "# A\\n\\none two.\\n\\nthree four.\\n\\n# B\\n\\nfive six."
    >>> [(c.heading, c.text) for c in split_document(doc, "d.md", 400, 0)]
    [('A', '# A\\n\\none two.\\n\\nthree four.'), ('B', '# B\\n\\nfive six.')]
    """
    sections: list[tuple[str, list[str]]] = [("", [])]
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        para = para.strip()
        if not para:
            continue
        first = para.splitlines()[0]
        if _HEADING.match(first):
            sections.append((first.lstrip("#").strip(), []))
        sections[-1][1].append(para)
    chunks: list[Chunk] = []
    for heading, paras in sections:
        for body in _pack(_pieces(paras, max_chars), max_chars, overlap_chars):
            cid = f"{Path(source).stem}-{len(chunks):04d}-{fingerprint(body)[:6]}"
            chunks.append(Chunk(cid, source, heading, body))
    return chunks


def _pieces(paras: list[str], max_chars: int) -> list[str]:
    """Paragraphs, with any paragraph longer than the budget cut at sentence ends (then at words)."""
    out = []
    for para in paras:
        if len(para) <= max_chars:
            out.append(para)
            continue
        current = ""
        for sentence in re.split(r"(?<=[.!?])\s+", para):
            while len(sentence) > max_chars:  # one giant "sentence": cut at a space
                cut = sentence.rfind(" ", 0, max_chars)
                cut = cut if cut > 0 else max_chars
                if current:
                    out.append(current)
                    current = ""
                out.append(sentence[:cut])
                sentence = sentence[cut:].lstrip()
            if current and len(current) + 1 + len(sentence) > max_chars:
                out.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}".strip()
        if current:
            out.append(current)
    return out


def _pack(pieces: list[str], max_chars: int, overlap_chars: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            tail = _tail(current, overlap_chars)
            current = f"{tail}\n\n{piece}" if tail and len(tail) + 2 + len(piece) <= max_chars else piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _tail(text: str, n: int) -> str:
    """The last ``n`` characters of ``text``, starting at a word boundary."""
    if n <= 0:
        return ""
    tail = text[-n:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 and len(text) > n else tail


def find_documents(patterns: list[str]) -> list[Path]:
    """Files named by paths, folders (``*.md``/``*.txt`` inside) or glob patterns, sorted, no repeats."""
    if not patterns:
        raise DataError("synth.doc_qa.documents is empty; list the .md/.txt files or folders to read")
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".md", ".txt", ".markdown"))
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not matches:
            raise DataError(f"synth.doc_qa.documents: '{pattern}' matches no file")
        found += [m for m in matches if m not in found]
    return found


@dataclass
class _Pair:
    chunk: Chunk
    question: str
    input: str
    answer: str
    seed: int


def run(ctx: SynthContext) -> None:
    """Chunk the documents, ask for pairs, keep the ones the closed-book check agrees with."""
    cfg = ctx.config.doc_qa
    chunks = [
        chunk
        for path in find_documents(cfg.documents)
        for chunk in split_document(
            path.read_text(encoding="utf-8", errors="replace"), str(path), cfg.chunk_chars, cfg.overlap_chars
        )
    ]
    pairs = _generate(ctx, chunks)
    answers = ctx.teacher.complete_many(
        [
            ctx.request("doc_qa_closed_book", (PIPELINE, "closed_book", p.question), question=_question(p))
            for p in pairs
        ],
        "doc-qa: closed-book answers",
    )
    verdicts = _judge(ctx, pairs, answers)
    for pair, answer, verdict in zip(pairs, answers, verdicts, strict=True):
        ctx.tally.saw("verify")
        item = {"chunk_id": pair.chunk.id, "question": pair.question, "answer": pair.answer}
        if not answer.ok:
            ctx.tally.reject("verify", "request_failed", item, detail=answer.error)
            continue
        agree, score, detail = verdict
        if not agree:
            ctx.tally.reject("verify", detail, {**item, "closed_book": answer.text, "score": score})
            continue
        templates = ["doc_qa_generate", "doc_qa_closed_book"] + (
            ["doc_qa_judge"] if cfg.judge == "teacher" else []
        )
        ctx.tally.keep(
            single_turn(
                join_prompt(pair.question, pair.input),
                pair.answer,
                source=f"synth/{PIPELINE}",
                provenance=ctx.provenance(
                    PIPELINE,
                    templates,
                    pair.seed,
                    parent_id=pair.chunk.id,
                    document=pair.chunk.source,
                    heading=pair.chunk.heading or None,
                    judge=cfg.judge,
                    agreement=score,
                ),
                instruction=pair.question,
                input=pair.input or None,
            ),
            "verify",
        )


def _question(pair: _Pair) -> str:
    return join_prompt(pair.question, pair.input)


def _generate(ctx: SynthContext, chunks: list[Chunk]) -> list[_Pair]:
    cfg = ctx.config.doc_qa
    requests = [
        ctx.request(
            "doc_qa_generate",
            (PIPELINE, "generate", c.id),
            persona=cfg.persona,
            source=Path(c.source).name,
            count=str(cfg.pairs_per_chunk),
            chunk=c.text,
        )
        for c in chunks
    ]
    results = ctx.teacher.complete_many(requests, "doc-qa: question/answer pairs")
    pairs: list[_Pair] = []
    for chunk, res in zip(chunks, results, strict=True):
        ctx.tally.saw("generate")
        item = {"chunk_id": chunk.id, "document": chunk.source}
        if not res.ok:
            ctx.tally.reject("generate", "request_failed", item, detail=res.error)
            continue
        objects = parse_json_objects(res.text or "")
        if not objects:
            ctx.tally.reject("generate", "malformed_json", item, raw=res.text)
            continue
        template = ctx.templates["doc_qa_generate"]
        for n, obj in enumerate(objects):
            ctx.tally.saw("pair")
            if n >= cfg.pairs_per_chunk:  # asked for N, got more: counted, not silently cut
                ctx.tally.reject(
                    "pair", "surplus", {**item, "pair": obj}, detail=f"beyond pairs_per_chunk ({n + 1})"
                )
                continue
            question, answer = obj.get("instruction"), obj.get("output")
            input_text = obj.get("input") or ""
            if not (isinstance(question, str) and isinstance(answer, str) and isinstance(input_text, str)):
                ctx.tally.reject("pair", "malformed_pair", {**item, "pair": obj})
                continue
            if not question.strip() or not answer.strip():
                ctx.tally.reject("pair", "empty_field", {**item, "pair": obj})
                continue
            echo = first_echo([question, input_text, answer], template)
            if echo:
                ctx.tally.reject("pair", "template_echo", {**item, "pair": obj}, detail=echo)
                continue
            pairs.append(_Pair(chunk, question.strip(), input_text.strip(), answer.strip(), res.request.seed))
    return pairs


def _judge(ctx: SynthContext, pairs: list[_Pair], answers) -> list[tuple[bool, float | None, str]]:
    """(agree, score, reason-if-not) per pair."""
    cfg = ctx.config.doc_qa
    if cfg.judge == "none":
        return [(True, None, "") for _ in pairs]
    if cfg.judge == "similarity":
        metric = token_f1 if cfg.similarity == "token_f1" else rouge_l
        out = []
        for pair, ans in zip(pairs, answers, strict=True):
            score = round(metric(pair.answer, ans.text or ""), 4)
            out.append((score >= cfg.threshold, score, "answers_disagree"))
        return out
    todo = [(i, p, a) for i, (p, a) in enumerate(zip(pairs, answers, strict=True)) if a.ok]
    verdicts = ctx.teacher.complete_many(
        [
            ctx.request(
                "doc_qa_judge",
                (PIPELINE, "judge", p.question, a.text),
                question=_question(p),
                reference=p.answer,
                candidate=a.text or "",
            )
            for _, p, a in todo
        ],
        "doc-qa: judge",
    )
    out: list[tuple[bool, float | None, str]] = [(False, None, "request_failed")] * len(pairs)
    for (i, _, _), res in zip(todo, verdicts, strict=True):
        verdict = parse_yes_no(res.text or "") if res.ok else None
        if not res.ok:
            out[i] = (False, None, "judge_request_failed")
        elif verdict is None:
            out[i] = (False, None, "malformed_verdict")
        else:
            out[i] = (verdict, 1.0 if verdict else 0.0, "judge_disagrees")
    return out
