"""Checks on rendered samples that catch silent SFT bugs; shared by the mask preview and ``doctor``.

Each takes a record and what it rendered to and answers one question: is the
end-of-turn token trained, is the inference prompt a token prefix of the training
text, did the template drop the tools, does the trained text still hold unfilled
``{{ variables }}``, does the thinking mode at training match the one at inference.
"""

from __future__ import annotations

import re

from sftlab.data.record import Conversation
from sftlab.recipe.sections.render import RenderSection
from sftlab.render.labels import IGNORE_INDEX
from sftlab.render.messages import to_messages
from sftlab.render.sample import RenderedSample

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_INLINE_THINK = re.compile(r"<think>\s*\S")


def special_ids(tokenizer) -> set[int]:
    """Special and added-special token ids, and EOS: the tokens that can end a turn."""
    ids = set(tokenizer.all_special_ids)
    ids.update(
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)
    )
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def eot_ok(sample: RenderedSample, segments, specials: set[int]) -> bool:
    """Every trained assistant turn's last trained token is a special (stop) token."""
    for seg in segments:
        if seg.role != "assistant":
            continue
        trained = [t for t in range(seg.body, seg.end) if sample.labels[t] != IGNORE_INDEX]
        if trained and sample.input_ids[trained[-1]] not in specials:
            return False
    return True


def prompt_is_prefix(
    conv: Conversation, tokenizer, cfg: RenderSection, ids: list[int], n_messages: int | None = None
) -> bool | None:
    """Is render(``messages[:n-1]``, generation prompt) a token prefix of ``ids``, the rendering of
    ``messages[:n]`` ending with an assistant turn? ``None`` when there is no such turn."""
    messages = to_messages(conv, cfg.reasoning)[:n_messages]
    if not messages or messages[-1]["role"] != "assistant" or len(messages) < 2:
        return None
    text = tokenizer.apply_chat_template(
        messages[:-1],
        tools=conv.tools or None,
        tokenize=False,
        add_generation_prompt=True,
        **cfg.template_kwargs,
    )
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[: len(prompt)] == prompt


def _tool_names(conv: Conversation) -> set[str]:
    """Function names the rendering must show: every tool call made, every tool schema offered."""
    names = {c.name for t in conv.turns for c in (t.tool_calls or [])}
    for tool in conv.tools or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(fn, dict) and fn.get("name"):
            names.add(str(fn["name"]))
    return names


def tools_rendered(conv: Conversation, text: str) -> bool:
    """Does the training text name every tool called or offered? Templates without tool support drop them
    silently (an empty assistant turn gets trained instead of the call)."""
    return all(name in text for name in _tool_names(conv))


def trained_text(tokenizer, sample: RenderedSample) -> str:
    """The trained runs of a sample, decoded, one run per line."""
    runs, run = [], []
    for tok, lab in zip(sample.input_ids, sample.labels, strict=True):
        if lab != IGNORE_INDEX:
            run.append(tok)
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return "\n".join(tokenizer.decode(r) for r in runs)


def template_variables(text: str) -> list[str]:
    """Names of unfilled ``{{ name }}`` placeholders in ``text``, in order of first appearance.

    >>> template_variables("I am {{name}}, made by {{ author }}; ask {{name}}.")
    ['name', 'author']
    """
    return list(dict.fromkeys(_VARIABLE.findall(text)))


def substitute_fix(names: list[str], source_index: int | str = "i") -> str:
    """The recipe change that fills the variables (the data source's ``substitute:`` option).

    >>> substitute_fix(["name", "author"], 0)
    'set data.sources[0].substitute: {name: ..., author: ...}'
    """
    inner = ", ".join(f"{n}: ..." for n in names) or "name: ..."
    return f"set data.sources[{source_index}].substitute: {{{inner}}}"


def carries_reasoning(conv: Conversation, cfg: RenderSection) -> bool:
    """Does the record bring reasoning into the rendering: an assistant turn with ``reasoning``, or
    a non-empty ``<think>`` block written into its content (templates like Qwen3's parse it out)?"""
    return any(
        (t.reasoning and cfg.reasoning != "drop") or _INLINE_THINK.search(t.content or "")
        for t in conv.turns
        if t.role == "assistant"
    )


def reasoning_rendered(conv: Conversation, text: str) -> bool:
    """Does the rendered text contain the reasoning of at least one assistant turn? Templates that
    ignore ``reasoning_content`` drop all of it silently (earlier turns' reasoning may be dropped
    on purpose, as Qwen3 does, so one is enough)."""
    return any(t.reasoning.strip() in text for t in conv.turns if t.role == "assistant" and t.reasoning)
