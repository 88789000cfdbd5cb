"""The ``context_fragment`` filter: conversations that start in the middle.

A record whose first user turn only makes sense after an earlier conversation
("continue", "go on", "and in python?", "what about the second one?", "rewrite
your last answer") teaches the model to answer a question it never saw. Two
sources of them in real chat dumps:

* a conversation that was cut into segments (ShareGPT's split ids ``<id>_<n>``
  with ``n`` ≥ 1: the segment's first turn answers or follows a part that is in
  another record) → ``split_continuation`` when its first user turn refers back
  (a follow-up opener, "you said", "the above", "your last answer"…) or when
  reading had to drop a leading assistant turn and the user's reply refers back;
* any record whose first user turn is a bare continuation command or a short
  follow-up → ``context_fragment``.

A segment whose first turn is a new, self-contained question is kept: about a
third of ShareGPT's segments read that way. ``min_prompt_words`` (off by
default) also drops very short first turns as ``short_prompt``; on ShareGPT most
first turns of three words or fewer are greetings and topic questions ("what is
AWS") that stand alone, so it is a choice about value, not context.

>>> from sftlab.data.record import Conversation, Meta, Turn
>>> conv = lambda text, id=None: Conversation([Turn("user", text), Turn("assistant", "Sure.")], meta=Meta(id=id))
>>> ContextFragmentFilter().check(conv("Continue."))
('context_fragment', 'continue')
>>> ContextFragmentFilter().check(conv("and in python?"))
('context_fragment', 'and')
>>> ContextFragmentFilter().check(conv("Thanks, now make it shorter", "abc_4"))
('split_continuation', 'thanks')
>>> ContextFragmentFilter().check(conv("What is an Oracle PDB?", "abc_4")) is None
True
"""

from __future__ import annotations

import re
from functools import cached_property

from sftlab.curate.steps.filters import Filter, Verdict, regexes
from sftlab.curate.steps.text import words
from sftlab.data.record import Conversation, Record
from sftlab.recipe.sections.curation import ContextFragmentFilterConfig

# ShareGPT's splitter names segments <id>_<index of the first message>; _0 is the beginning.
SPLIT_ID = re.compile(r"_(\d+)$")

_POLITE = r"(?:(?:please|pls|plz|ok(?:ay)?|now|so|then|yes|great|thanks?|thank you|cool|nice|good)[,!. ]+)*"
# A whole first turn that is only a continuation command or an acknowledgement.
_COMMAND = (
    r"continue|cont|go on|keep going|carry on|go ahead|proceed|next|more|and|and then|then|finish|"
    r"finish it|complete it|keep writing|continue writing|write more|tell me more|more please|"
    r"more details?|elaborate|expand|expand on (?:it|that|this)|what else|again|try again|do it again|redo|"
    r"one more|another|another one|same|the same|shorter|longer|yes|yes please|no|ok|okay|sure|thanks|"
    r"thank you|rewrite|rewrite it|why|how|example|examples|give me (?:an )?examples?|go|do it|"
    r"continue (?:the|your|from) [\w ]{1,30}|and the (?:next|rest)|the rest|rest of (?:it|the \w+)|"
    r"繼續|继续|계속|続けて|続き|continuar|continua|continuez|continuer|weiter|weitermachen|продолжи(?:те)?|devam"
)
BARE = [rf"^{_POLITE}(?:{_COMMAND})(?:[,!. ]+(?:please|pls|plz|thanks|thank you))?$"]
# A short first turn that opens as a follow-up or points at something said before.
_OPENER = (
    r"^(?:and|but|also|what about|how about|same (?:for|with|in)|now (?:in|for|do|with|make|try)|instead)\b"
)
_TARGET = r"^(?:now |and |but |also )?(?:in|into|to|using|with) (?:\w+\W*){1,2}(?:please|pls|instead|too)?$"
REFERS_BACK = [
    r"(?<!can )(?<!could )(?<!would )(?<!will )\byou (?:just |previously |already )?(?:said|wrote|mentioned|gave|provided|suggested|listed|described|"
    r"made|created|generated|missed|forgot|stopped|left off|were saying)\b",
    r"\byour (?:previous|last|earlier|above|first|second|third|former|latest|prior) "
    r"(?:answer|response|reply|message|code|example|list|suggestion|output|version|draft|point|table)\b",
    r"\b(?:the|this|that) (?:above|previous|last|earlier|former|prior) (?:answer|response|reply|message|code|"
    r"list|version|example|output|table|paragraph|section|story|email|poem|text|one)\b",
    r"\b(?:the|that) (?:first|second|third|fourth|fifth|last) (?:one|option|point|idea|step|part|paragraph|"
    r"section|item|example|scene|chapter|suggestion|question)\b",
    r"\b(?:as|like) (?:you|i|we) (?:said|mentioned|discussed|described)(?: (?:above|before|earlier))?\b",
    r"\bfrom where you (?:left|stopped)\b|\bwhere (?:we|you) left off\b|\bpick up where\b",
]
# In a segment the prior part exists, elsewhere: a follow-up opener or an acknowledgement starting the turn.
FOLLOW_UP = [
    _OPENER,
    r"^(?:ok(?:ay)?|great|good|nice|perfect|thanks?|thank you|cool|awesome|excellent|yes|yeah|yep|no|nope|"
    r"correct|right|exactly|wow|interesting|hmm+|then|continue|again|instead|more|next|"
    r"same|keep going|go on|that'?s)(?![\w'-])",
    r"^(?:can|could|would) you (?:also |now |please )*(?:continue|expand|elaborate|rewrite|shorten|redo|"
    r"do (?:the same|it again|that)|make (?:it|that|this|them)|change (?:it|that|this)|add (?:more|to (?:it|that))|"
    r"give me more|explain (?:it|that|this|them) (?:more|again|further)|finish|complete (?:it|that|the))\b",
    r"^(?:rewrite|shorten|expand|redo|change|modify|update|fix|improve|continue) (?:it|that|them|this one)\b",
    r"\babove\b",  # near the start of a segment nothing is above but the missing part
    r"\bwhy (?:did|didn'?t|do|don'?t) you\b|\bwhy you (?:give|gave|did|wrote|used)\b",
    r"^[^\n]{0,80}\b(?:for|about|on|of|with|in|to|like) (?:this|that|these|those|it)\W*$",
]


def first_user_turn(record: Record) -> str | None:
    """The first user turn when it opens the conversation (after an optional system prompt)."""
    if not isinstance(record, Conversation):
        return None
    turns = [t for t in record.turns if t.role != "system"]
    if not turns or turns[0].role != "user":
        return None
    return turns[0].content


def is_split_segment(record: Record) -> bool:
    """A segment after the first of a split conversation (id ``<id>_<n>``, n ≥ 1)."""
    match = SPLIT_ID.search(record.meta.id or "")
    return match is not None and int(match.group(1)) >= 1


class ContextFragmentFilter(Filter):
    """``context_fragment`` / ``split_continuation`` / ``short_prompt`` (opt-in), from the first user turn."""

    config_class = ContextFragmentFilterConfig

    @cached_property
    def _bare(self) -> list[re.Pattern]:
        return regexes(BARE + list(self.cfg.extra_patterns))

    @cached_property
    def _short(self) -> list[re.Pattern]:
        return regexes([_OPENER, _TARGET, *REFERS_BACK])

    @cached_property
    def _segment(self) -> list[re.Pattern]:
        return regexes(FOLLOW_UP + REFERS_BACK)

    def check(self, record: Record) -> Verdict:
        text = first_user_turn(record)
        if text is None:
            return None
        prompt = _plain(text)
        n_words = len(words(prompt))
        hit = _search(self._bare, prompt)
        if hit is None and n_words <= self.cfg.max_prompt_words:
            hit = _search(self._short, prompt)
        if hit is not None:
            return "context_fragment", hit
        if self.cfg.split_ids and is_split_segment(record):
            # Only the opening matters: "the above" deep in a long turn points at text pasted in it.
            hit = _search(self._segment, prompt[: self.cfg.segment_chars])
            if hit is not None:
                return "split_continuation", hit
        if n_words < self.cfg.min_prompt_words:
            return "short_prompt", f"{n_words} words"
        return None


def _plain(text: str) -> str:
    """Lower-cased, spaces collapsed, trailing punctuation and quotes dropped: "Continue..." → "continue"."""
    return re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip().strip(" .!?…:;\"'*-")


def _search(patterns: list[re.Pattern], text: str) -> str | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match.group(0).strip(" ,.!")
    return None
