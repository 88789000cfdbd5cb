"""``render:`` — chat template, which tokens are trained, reasoning, truncation and packing."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from sftlab.recipe.base import Section

# apply_chat_template's own arguments: a template variable of the same name could never reach the template.
_RESERVED_KWARGS = frozenset(
    [
        "messages",
        "conversation",
        "tools",
        "documents",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "tokenizer_kwargs",
        "chat_template",
    ]
)


class RenderSection(Section):
    template: str = "model"
    """``model`` (the tokenizer's own chat template), a built-in name (chatml, alpaca, llama3, mistral, plain) or a .jinja file."""
    template_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra variables for the chat template, e.g. ``{enable_thinking: false}`` for Qwen3. Written into the saved template, so training, preview, evaluation, generation and serving all see the same values."""
    train_on: Literal["all_assistant", "last_assistant", "everything"] = "all_assistant"
    """Which tokens carry loss: every assistant turn (with its end-of-turn token), only the last, or the prompt too."""
    train_tool_calls: bool = True
    """Assistant turns that call tools are trained like other assistant turns."""
    history_rewrite: Literal["per_turn", "last_turn", "error"] = "per_turn"
    """Templates that render earlier turns differently once the conversation goes on (Qwen3 drops earlier ``<think>`` blocks): ``per_turn`` makes one sample per trained assistant turn, each the conversation up to that turn as inference renders it; ``last_turn`` trains only the last; ``error`` stops. Detected per record; templates that do not rewrite history give one sample per record."""
    train_reasoning: bool = True
    """Train the ``<think>...</think>`` block at the start of an assistant turn; ``false`` keeps it as context only (trains the answer given the reasoning)."""
    drop_empty_think: bool = True
    """Do not train an empty ``<think></think>`` block the template writes into an assistant turn (Qwen3 does for turns without reasoning): the model should not learn to skip thinking from data that simply has none."""
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

    @field_validator("template_kwargs")
    @classmethod
    def _template_variables(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not key.isidentifier() or key in _RESERVED_KWARGS:
                raise ValueError(
                    f"render.template_kwargs: '{key}' cannot be a template variable "
                    f"({'not an identifier' if not key.isidentifier() else 'an argument of apply_chat_template'})"
                )
        return value
