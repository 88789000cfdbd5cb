"""One record → its :class:`RenderedSample` (ids, labels, weights), under the ``render:`` settings.

Usually one sample per record; a template that rewrites history (Qwen3) gives one per trained
assistant turn under ``render.history_rewrite: per_turn``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sftlab.data.record import Conversation, TextRecord
from sftlab.recipe.sections.render import RenderSection
from sftlab.render.errors import EmptyLabelsError, TooLongError
from sftlab.render.labels import IGNORE_INDEX, labels_from_weights
from sftlab.render.masks import Segment, not_prefix_stable, render_segments, trailing_whitespace
from sftlab.render.messages import to_messages
from sftlab.render.reasoning import think_block, thinking_hint


@dataclass
class RenderedSample:
    """Token ids and their labels (:data:`IGNORE_INDEX` where not trained)."""

    input_ids: list[int]
    labels: list[int]
    weights: list[float] | None = None
    """Per-token loss weight; ``None`` means every trained token has weight 1."""
    id: str | None = None
    source: str | None = None
    task: str | None = None
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def features(self) -> dict[str, Any]:
        """What collators take: ``input_ids``, ``labels`` and (if any) ``weights``."""
        d: dict[str, Any] = {"input_ids": self.input_ids, "labels": self.labels}
        if self.weights is not None:
            d["weights"] = self.weights
        return d


def _turn_weight(seg: Segment, conv: Conversation, cfg: RenderSection, last_assistant: int) -> float:
    """The loss weight of a message's own tokens under the policy, overridden by ``Turn.weight``."""
    if seg.role == "system":
        return 1.0 if cfg.train_on == "everything" else 0.0
    turn = conv.turns[seg.index - (conv.system is not None)]
    if turn.weight is not None:  # explicit per-turn weight wins over the policy
        return float(turn.weight)
    if cfg.train_on == "everything":
        return 1.0
    if seg.role != "assistant" or (turn.tool_calls and not cfg.train_tool_calls):
        return 0.0
    if cfg.train_on == "last_assistant" and seg.index != last_assistant:
        return 0.0
    return 1.0


def _assistant_weights(tokenizer, ids, seg: Segment, w: float, cfg: RenderSection, weights, notes) -> None:
    """Weight ``w`` on an assistant body and its end-of-turn token; a leading think block by
    ``render.train_reasoning`` / ``render.drop_empty_think``; trailing whitespace never."""
    lo, hi = seg.body, seg.end - trailing_whitespace(tokenizer, ids, seg.body, seg.end)
    block = think_block(tokenizer, ids, lo, hi) if w else None
    if block is not None:
        notes["empty_think"] += block.empty
        if cfg.drop_empty_think if block.empty else not cfg.train_reasoning:
            lo = block.end
    for t in range(lo, hi):
        weights[t] = w


def conversation_weights(
    tokenizer, ids: list[int], segments: list[Segment], conv: Conversation, cfg: RenderSection, notes=None
) -> list[float]:
    """Per-token weights: assistant bodies (with end-of-turn) by policy; everything when asked.

    Segments without trusted boundaries (``not seg.stable``) keep the default: they are never trained
    turns, except under ``train_on: everything``, which trains the whole text anyway.
    """
    notes = notes if notes is not None else {"empty_think": 0}
    weights = [1.0 if cfg.train_on == "everything" else 0.0] * len(ids)
    last_assistant = max((s.index for s in segments if s.role == "assistant"), default=-1)
    for seg in segments:
        if not seg.stable:
            continue
        w = _turn_weight(seg, conv, cfg, last_assistant)
        if seg.role == "assistant" and cfg.train_on != "everything":
            _assistant_weights(tokenizer, ids, seg, w, cfg, weights, notes)
        else:  # everything, or a non-assistant turn trained only by an explicit weight > 0
            for t in range(seg.start, seg.end):
                weights[t] = w
    return weights


def _fit(ids, segments, cfg: RenderSection, record_id) -> tuple[int, bool]:
    """How many tokens to keep (and whether that truncates), or raise :class:`TooLongError`."""
    if len(ids) <= cfg.max_length:
        return len(ids), False
    if cfg.truncation == "drop_record":
        raise TooLongError(f"{len(ids)} tokens > render.max_length={cfg.max_length}", record_id)
    seen_user = False
    keep = 0
    for seg in segments:
        seen_user = seen_user or seg.role == "user"
        if seg.end > cfg.max_length:
            break
        if seg.role == "assistant" and seen_user and seg.stable:
            keep = seg.end
    if not keep:
        raise _first_pair_too_long(len(ids), cfg, record_id)
    return keep, True


def _first_pair_too_long(n: int, cfg: RenderSection, record_id) -> TooLongError:
    return TooLongError(
        f"{n} tokens > render.max_length={cfg.max_length} and even the first "
        "user/assistant pair does not fit; raise render.max_length",
        record_id,
    )


def _finish(ids, weights, record, truncated) -> RenderedSample:
    if not any(w > 0 for w in weights[1:]):  # the first token is never predicted
        raise EmptyLabelsError(
            "no token is trained (every assistant turn masked or weight 0); fix the record's turn "
            "weights or render.train_on, or set render.on_empty_labels: drop",
            record.meta.id,
        )
    plain = all(w in (0.0, 1.0) for w in weights)
    return RenderedSample(
        input_ids=list(ids),
        labels=labels_from_weights(ids, weights),
        weights=None if plain else [float(w) for w in weights],
        id=record.meta.id,
        source=record.meta.source,
        task=record.meta.task,
        truncated=truncated,
    )


def _render_text(record: TextRecord, tokenizer, cfg: RenderSection) -> RenderedSample:
    ids = tokenizer(record.text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)  # teach the model where a document ends
    truncated = len(ids) > cfg.max_length
    if truncated:
        if cfg.truncation == "drop_record":
            raise TooLongError(f"{len(ids)} tokens > render.max_length={cfg.max_length}", record.meta.id)
        ids = ids[: cfg.max_length]  # text has no turns: keep the head
    return _finish(ids, [1.0] * len(ids), record, truncated)


@dataclass
class ConversationSamples:
    """The samples one conversation renders to, and how.

    ``mode`` is ``whole`` (one sample: the template is prefix-stable over every trained turn),
    ``per_turn`` or ``last_turn`` (``render.history_rewrite`` for a template that rewrote history).
    """

    samples: list[RenderedSample]
    segments: list[list[Segment]]
    """Per sample, its segments with trusted boundaries (for the preview's checks)."""
    message_counts: list[int]
    """Messages each sample renders: its inference prompt is ``messages[: n - 1]`` + generation prompt."""
    mode: str
    full_length: int
    """Tokens of the whole conversation's rendering, before truncation."""
    untrained_turns: int = 0
    """Trained-by-policy assistant turns left out (``last_turn``, or per-turn samples over max_length)."""
    empty_think: int = 0
    """Trained assistant turns that open with an empty think block."""


def _trained_turns(segments: list[Segment], conv: Conversation, cfg: RenderSection) -> list[int]:
    last = max((s.index for s in segments if s.role == "assistant"), default=-1)
    return [s.index for s in segments if _turn_weight(s, conv, cfg, last) > 0]


def _whole(conv, tokenizer, cfg, ids, segments, n_messages) -> ConversationSamples:
    full_length = len(ids)
    keep, truncated = _fit(ids, segments, cfg, conv.meta.id)
    if truncated:
        ids, segments = ids[:keep], [s for s in segments if s.end <= keep]
    notes = {"empty_think": 0}
    weights = conversation_weights(tokenizer, ids, segments, conv, cfg, notes)
    sample = _finish(ids, weights, conv, truncated)
    kept = [s for s in segments if s.stable]
    return ConversationSamples([sample], [kept], [n_messages], "whole", full_length, 0, notes["empty_think"])


def _per_turn(conv, tokenizer, cfg, messages, turns: list[int], full_length: int) -> ConversationSamples:
    """One sample per turn in ``turns``: ``messages[:k+1]`` as inference renders it, only turn ``k`` trained."""
    out = ConversationSamples([], [], [], cfg.history_rewrite, full_length)
    rid = conv.meta.id
    for k in turns:
        ids, segments = render_segments(
            tokenizer, messages[: k + 1], conv.tools, record_id=rid, template=cfg.template,
            template_kwargs=cfg.template_kwargs, strict=False,
        )  # fmt: skip
        seg = segments[k]
        if not seg.stable:
            hint = thinking_hint(tokenizer, messages, k, conv.tools, cfg.template_kwargs)
            raise not_prefix_stable(seg, cfg.template, rid, hint)
        if len(ids) > cfg.max_length:
            if cfg.truncation == "drop_record":
                raise TooLongError(f"{len(ids)} tokens > render.max_length={cfg.max_length}", rid)
            out.untrained_turns += 1
            continue
        notes = {"empty_think": 0}
        weights = [0.0] * len(ids)
        _assistant_weights(tokenizer, ids, seg, _turn_weight(seg, conv, cfg, k), cfg, weights, notes)
        out.samples.append(_finish(ids, weights, conv, False))
        out.segments.append([s for s in segments if s.stable])
        out.message_counts.append(k + 1)
        out.empty_think += notes["empty_think"]
    if not out.samples:
        raise _first_pair_too_long(full_length, cfg, rid)
    out.samples[-1].truncated = out.untrained_turns > 0
    return out


def render_conversation(conv: Conversation, tokenizer, cfg: RenderSection) -> ConversationSamples:
    """Render a conversation into one sample, or one per trained turn when the template rewrites history.

    The whole conversation makes one sample when every trained turn's generation prompt and
    rendering are token prefixes of it (turns left untrained may be rendered differently later:
    they are context, as at inference). Otherwise ``render.history_rewrite`` decides.
    """
    messages = to_messages(conv, cfg.reasoning)
    ids, segments = render_segments(
        tokenizer, messages, conv.tools, record_id=conv.meta.id, template=cfg.template,
        template_kwargs=cfg.template_kwargs, strict=False,
    )  # fmt: skip
    trained = _trained_turns(segments, conv, cfg)
    unstable = [segments[i] for i in trained if not segments[i].stable]
    if cfg.train_on == "everything" or not unstable:
        return _whole(conv, tokenizer, cfg, ids, segments, len(messages))
    if cfg.history_rewrite == "error" or any(segments[i].role != "assistant" for i in trained):
        raise not_prefix_stable(
            unstable[0], cfg.template, conv.meta.id,
            "the template renders earlier turns differently once the conversation goes on; set "
            "render.history_rewrite: per_turn (one sample per assistant turn) or last_turn, or choose "
            "another template with render.template",
        )  # fmt: skip
    turns = trained if cfg.history_rewrite == "per_turn" else trained[-1:]
    out = _per_turn(conv, tokenizer, cfg, messages, turns, len(ids))
    out.untrained_turns += len(trained) - len(turns)
    return out


def render_samples(record, tokenizer, cfg: RenderSection | None = None) -> list[RenderedSample]:
    """Every sample of one record: one, or one per trained assistant turn (``render.history_rewrite: per_turn``)."""
    cfg = cfg or RenderSection()
    if isinstance(record, TextRecord):
        return [_render_text(record, tokenizer, cfg)]
    return render_conversation(record, tokenizer, cfg).samples


def render_record(record, tokenizer, cfg: RenderSection | None = None) -> RenderedSample:
    """Render one record with ``tokenizer.chat_template`` (see :func:`resolve_template`).

    A :class:`TextRecord` trains every token and ends with EOS. Raises
    :class:`EmptyLabelsError`, :class:`TooLongError` or :class:`NotPrefixStableError`,
    each naming the record id. Where the template rewrites history and the record renders
    to several samples (:func:`render_samples`), this is the last one: the whole
    conversation as inference renders it at its last trained turn. Training uses them all.
    """
    return render_samples(record, tokenizer, cfg)[-1]
