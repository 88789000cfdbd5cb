"""``render:`` — chat template, which tokens are trained, truncation and packing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sftlab.recipe.base import Section


class RenderSection(Section):
    template: str = "model"
    """``model`` (the tokenizer's own chat template), a built-in name (chatml, alpaca, llama3, mistral, plain) or a .jinja file."""
    train_on: Literal["all_assistant", "last_assistant", "everything"] = "all_assistant"
    """Which tokens carry loss: every assistant turn (with its end-of-turn token), only the last, or the prompt too."""
    train_tool_calls: bool = True
    """Assistant turns that call tools are trained like other assistant turns."""
    max_length: int = Field(default=2048, ge=8)
    """Longest sequence in tokens."""
    truncation: Literal["drop_turns", "drop_record"] = "drop_turns"
    """Over-long records: drop whole trailing turns (the system prompt is kept), or drop the record."""
    packing: bool = True
    """Pack each epoch's samples into rows of ``max_length`` tokens (best-fit decreasing), with no attention across samples; ``training.batch_size`` then counts rows."""
    group_by_length: bool = True
    """When not packing: batch samples of similar length to cut padding."""
    num_proc: int = Field(default=1, ge=1)
    """Processes used for tokenization."""
    on_empty_labels: Literal["error", "drop"] = "error"
    """A record with no trained token (all masked, e.g. every assistant turn has weight 0): stop naming it, or drop and count it."""
    reasoning: Literal["template", "inline", "drop"] = "template"
    """Assistant reasoning: pass it as ``reasoning_content`` (templates that do not use it drop it), put it in the content as ``<think>...</think>``, or leave it out."""
