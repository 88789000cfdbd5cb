"""One record → one :class:`RenderedSample` (ids, labels, weights), under the ``render:`` settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sftlab.data.record import Conversation, TextRecord
from sftlab.recipe.sections.render import RenderSection
from sftlab.render.errors import EmptyLabelsError, TooLongError
from sftlab.render.labels import IGNORE_INDEX, labels_from_weights
from sftlab.render.masks import Segment, render_segments, trailing_whitespace
from sftlab.render.messages import to_messages


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


def conversation_weights(
    tokenizer, ids: list[int], segments: list[Segment], conv: Conversation, cfg: RenderSection
) -> list[float]:
    """Per-token weights: assistant bodies (with end-of-turn) by policy; everything when asked."""
    weights = [1.0 if cfg.train_on == "everything" else 0.0] * len(ids)
    last_assistant = max((s.index for s in segments if s.role == "assistant"), default=-1)
    for seg in segments:
        w = _turn_weight(seg, conv, cfg, last_assistant)
        if cfg.train_on == "everything":
            lo, hi = seg.start, seg.end
        elif seg.role == "assistant":
            lo, hi = seg.body, seg.end - trailing_whitespace(tokenizer, ids, seg.body, seg.end)
        else:  # a non-assistant turn trained only by an explicit weight > 0
            lo, hi = seg.start, seg.end
        for t in range(lo, hi):
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
        if seg.role == "assistant" and seen_user:
            keep = seg.end
    if not keep:
        raise TooLongError(
            f"{len(ids)} tokens > render.max_length={cfg.max_length} and even the first "
            "user/assistant pair does not fit; raise render.max_length",
            record_id,
        )
    return keep, True


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


def render_conversation(
    conv: Conversation, tokenizer, cfg: RenderSection
) -> tuple[RenderedSample, list[Segment], int]:
    """:func:`render_record` for a conversation, also returning the kept segments and the untruncated length."""
    messages = to_messages(conv, cfg.reasoning)
    ids, segments = render_segments(
        tokenizer, messages, conv.tools, record_id=conv.meta.id, template=cfg.template
    )
    full_length = len(ids)
    keep, truncated = _fit(ids, segments, cfg, conv.meta.id)
    if truncated:
        ids, segments = ids[:keep], [s for s in segments if s.end <= keep]
    weights = conversation_weights(tokenizer, ids, segments, conv, cfg)
    return _finish(ids, weights, conv, truncated), segments, full_length


def render_record(record, tokenizer, cfg: RenderSection | None = None) -> RenderedSample:
    """Render one record with ``tokenizer.chat_template`` (see :func:`resolve_template`).

    A :class:`TextRecord` trains every token and ends with EOS. Raises
    :class:`EmptyLabelsError`, :class:`TooLongError` or :class:`NotPrefixStableError`,
    each naming the record id.
    """
    cfg = cfg or RenderSection()
    if isinstance(record, TextRecord):
        return _render_text(record, tokenizer, cfg)
    return render_conversation(record, tokenizer, cfg)[0]
