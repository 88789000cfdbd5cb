"""An Ollama ``Modelfile`` for an exported GGUF: ``FROM``, a ``TEMPLATE`` that renders as the chat template, stops.

Ollama does not run Jinja; its templates are Go ``text/template``. We find the pieces
of the model's chat template by rendering marker conversations with it (the text
before and after a system, user and assistant message, the generation prompt, a
default system prompt the template adds on its own, a BOS it writes), build the Go
template from those pieces, and then *check* it: :mod:`sftlab.export.gotemplate`
renders the Go template and Jinja renders the chat template for a set of
conversations, and the two texts must be equal. A template this cannot express
(one that folds the system prompt into the first user turn, say) gets no ``TEMPLATE``
line and a note saying why; Ollama then falls back to the template it detects in the GGUF.

Every piece is written as a Go string constant (``{{ "<|im_start|>user\\n" }}``), so
no newline of the chat template is eaten by ``{{-`` trimming.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sftlab.export.gotemplate import render as render_go
from sftlab.export.ollama_tools import CHECK_TOOL_CONVERSATIONS, ToolPieces, same_up_to_json, tool_pieces

_M = ("Qx1Sys", "Qx2Usr", "Qx3Ast", "Qx4Usr")


@dataclass
class ChatPieces:
    """The chat template as literal pieces around each message."""

    bos: str
    default_system: str  # everything a conversation without a system message gets before its first user turn
    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation_prompt: str


@dataclass
class Modelfile:
    text: str
    template: str | None
    stops: list[str]
    note: str = ""


def _render(tokenizer, messages, gen: bool, tools: list[dict] | None = None) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=gen)


def _between(text: str, left: str, right: str) -> str:
    start = text.index(left) + len(left)
    return text[start : text.index(right, start)]


def chat_pieces(tokenizer, eot_tokens: list[str]) -> ChatPieces | None:
    """Split the chat template into pieces from marker renderings; ``None`` when it has no such shape."""
    s, u1, a1, u2 = _M
    try:
        one = _render(tokenizer, [{"role": "user", "content": u1}], False)
        gen = _render(tokenizer, [{"role": "user", "content": u1}], True)
        turns = [{"role": "user", "content": u1}, {"role": "assistant", "content": a1}]
        three = _render(tokenizer, [*turns, {"role": "user", "content": u2}], False)
        with_system = _render(
            tokenizer, [{"role": "system", "content": s}, {"role": "user", "content": u1}], False
        )
    except Exception:  # a template that raises on these shapes (e.g. demands alternating roles differently)
        return None
    if not gen.startswith(one) or s not in with_system:
        return None
    user_suffix = one[one.index(u1) + len(u1) :]
    user_to_assistant = _between(three, u1, a1)
    if not user_to_assistant.startswith(user_suffix):
        return None
    assistant_prefix = user_to_assistant[len(user_suffix) :]
    assistant_suffix, user_prefix = _split_turn_gap(_between(three, a1, u2), eot_tokens)
    head = one[: one.index(u1)]
    system_head = with_system[: with_system.index(s)]
    if not head.endswith(user_prefix) or not _between(with_system, s, u1).endswith(user_prefix):
        return None
    bos = tokenizer.bos_token if tokenizer.bos_token and one.startswith(tokenizer.bos_token) else ""
    if bos and user_prefix.startswith(bos):  # a turn-opening token (SmolLM2 calls <|im_start|> its BOS)
        bos = ""
    if not system_head.startswith(bos):
        return None
    return ChatPieces(
        bos=bos,
        default_system=head[len(bos) : len(head) - len(user_prefix)],
        system_prefix=system_head[len(bos) :],
        system_suffix=_between(with_system, s, u1)[: -len(user_prefix) or None],
        user_prefix=user_prefix,
        user_suffix=user_suffix,
        assistant_prefix=assistant_prefix,
        assistant_suffix=assistant_suffix,
        generation_prompt=gen[len(one) :],
    )


def _split_turn_gap(gap: str, eot_tokens: list[str]) -> tuple[str, str]:
    """The text between an assistant message and the next user message: (assistant suffix, user prefix).

    The end-of-turn token and the whitespace after it close the assistant turn; the rest opens the user's.

    >>> _split_turn_gap("<|im_end|>\\n<|im_start|>user\\n", ["<|im_end|>"])
    ('<|im_end|>\\n', '<|im_start|>user\\n')
    """
    for eot in eot_tokens:
        if gap.startswith(eot):
            rest = gap[len(eot) :]
            cut = len(eot) + len(rest) - len(rest.lstrip())
            return gap[:cut], gap[cut:]
    return "", gap


def _go(text: str) -> str:
    """``text`` as a Go template action printing it verbatim."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}" if text else ""


def go_template(p: ChatPieces, t: ToolPieces | None = None) -> str:
    """The Ollama ``TEMPLATE`` for ``p``: Ollama's ``.System`` and ``.Messages`` (system messages included);
    with ``t`` also ``.Tools``, the assistant's ``.ToolCalls`` and ``tool`` messages."""
    system = [
        "{{- if .System }}" + _go(p.system_prefix) + "{{ .System }}" + _go(p.system_suffix),
        *(["{{- else }}" + _go(p.default_system)] if p.default_system else []),
        "{{- end }}",
    ]
    if t is not None:
        system = [
            "{{- if .Tools }}",
            "{{- if .System }}" + _go(t.system_tools_prefix) + "{{ .System }}" + _go(t.system_tools_middle),
            "{{- else }}" + _go(t.tools_prefix) + "{{ end }}",
            "{{- range .Tools }}" + _go(t.tool_separator) + "{{ json . }}{{ end }}" + _go(t.tools_suffix),
            "{{- else }}",
            *system,
            "{{- end }}",
        ]
    lines = [
        _go(p.bos),
        *system,
        *(['{{- $prev := "" }}'] if t else []),
        "{{- range $i, $m := .Messages }}",
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}",
        *(
            ['{{- if and (eq $prev "tool") (ne .Role "tool") }}' + _go(t.results_close) + "{{ end }}"]
            if t
            else []
        ),
        '{{- if eq .Role "user" }}' + _go(p.user_prefix) + "{{ .Content }}" + _go(p.user_suffix),
        "{{- if $last }}" + _go(p.generation_prompt) + "{{ end }}",
        '{{- else if eq .Role "assistant" }}' + _go(p.assistant_prefix) + "{{ .Content }}",
        *(_tool_call_lines(t) if t else []),
        "{{- if not $last }}" + _go(p.assistant_suffix) + "{{ end }}",
        *(_tool_result_lines(t) if t else []),
        "{{- end }}",
        *(["{{- $prev = .Role }}"] if t else []),
        "{{- end }}",
        *(
            ['{{- if eq $prev "tool" }}' + _go(t.results_close) + _go(p.generation_prompt) + "{{ end }}"]
            if t
            else []
        ),
    ]
    return "\n".join(line for line in lines if line)


def _tool_call_lines(t: ToolPieces) -> list[str]:
    """Each call as the chat template writes it: ``{"name": "<name>", "arguments": <JSON>}`` between its tags."""
    return [
        "{{- range $j, $c := .ToolCalls }}{{ if $j }}" + _go(t.between_calls)
        + "{{ else if $m.Content }}" + _go(t.call_open_after_text) + "{{ else }}" + _go(t.call_open) + "{{ end }}"
        + _go('{"name": "') + "{{ .Function.Name }}" + _go('", "arguments": ')
        + "{{ json .Function.Arguments }}" + _go("}") + "{{ end }}",
        "{{- if .ToolCalls }}" + _go(t.call_close) + "{{ end }}",
    ]  # fmt: skip


def _tool_result_lines(t: ToolPieces) -> list[str]:
    """Consecutive tool results share one turn: opened by the first, closed before the next other message."""
    return [
        '{{- else if eq .Role "tool" }}{{ if eq $prev "tool" }}' + _go(t.between_results)
        + "{{ else }}" + _go(t.results_open) + "{{ end }}{{ .Content }}",
    ]  # fmt: skip


def ollama_values(messages: list[dict], tools: list[dict] | None = None) -> dict:
    """The data Ollama hands a template: ``System`` (system messages joined), ``Messages`` (all of them, with
    their ``ToolCalls``) and ``Tools``."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return {
        "System": system,
        "Messages": [
            {
                "Role": m["role"],
                "Content": m.get("content") or "",
                "ToolCalls": [
                    {"Function": {"Name": c["function"]["name"], "Arguments": _arguments(c["function"])}}
                    for c in m.get("tool_calls") or []
                ],
            }
            for m in messages
        ],
        "Tools": list(tools or []),
    }


def _arguments(function: dict) -> dict:
    args = function.get("arguments") or {}
    return json.loads(args) if isinstance(args, str) else args


CHECK_CONVERSATIONS = [
    [{"role": "user", "content": "Hello there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one,\nplease."},
    ],
    [
        {"role": "system", "content": "You answer in French.\nAlways."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour !"},
        {"role": "user", "content": "Thanks"},
    ],
]
"""Conversations (ending with a user turn, as at inference) the generated template must render exactly."""


def template_mismatch(
    tokenizer, template: str, conversations=CHECK_CONVERSATIONS, runtime_bos: str = ""
) -> str | None:
    """``None`` when ``template`` renders every conversation as the chat template does, else what differs.

    ``runtime_bos``: the BOS llama.cpp adds when it tokenizes the prompt (``add_bos_token``), so the
    template itself must not write it again.
    """
    for messages in conversations:
        expected = _render(tokenizer, messages, True)
        got = runtime_bos + render_go(template, ollama_values(messages))
        if got != expected:
            return f"for {[m['role'] for m in messages]} the chat template gives {expected!r}, the Go template {got!r}"
    return None


def tools_mismatch(tokenizer, template: str, runtime_bos: str = "") -> str | None:
    """``None`` when ``template`` renders every conversation with tools as the chat template does, reading the
    JSON in both as values (Go prints it compact); else what differs."""
    for messages, tools in CHECK_TOOL_CONVERSATIONS:
        expected = _render(tokenizer, messages, True, tools)
        got = runtime_bos + render_go(template, ollama_values(messages, tools))
        if not same_up_to_json(got, expected):
            return f"with tools, for {[m['role'] for m in messages]} the chat template gives {expected!r}, the Go template {got!r}"
    return None


_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "probe_tool",
        "description": "d",
        "parameters": {"type": "object", "properties": {}},
    },
}


def _renders_tools(tokenizer) -> bool:
    """Whether the chat template writes tool definitions into the prompt."""
    messages = [{"role": "user", "content": "hi"}]
    try:
        with_tools = tokenizer.apply_chat_template(messages, tools=[_PROBE_TOOL], tokenize=False)
    except Exception:  # a template that rejects tools has none to reproduce
        return False
    return "probe_tool" in with_tools


def _with_tools(tokenizer, pieces: ChatPieces, template: str, runtime_bos: str) -> tuple[str, str]:
    """The template with ``.Tools``/``.ToolCalls`` when the chat template's tool format can be expressed and
    checks out (with and without tools), else the plain one and a note saying tools are left out."""
    tools = tool_pieces(tokenizer, pieces, _render)
    problem = "its tool format is not the <tools>/<tool_call>/<tool_response> shape we can express"
    if tools is not None:
        with_tools = go_template(pieces, tools)
        problem = template_mismatch(tokenizer, with_tools, runtime_bos=runtime_bos) or tools_mismatch(
            tokenizer, with_tools, runtime_bos
        )
        if problem is None:
            return with_tools, (
                "TEMPLATE renders tools, tool calls and tool results as the chat template does, except the JSON "
                "of tools and arguments: Ollama prints it compact (Go's json), the chat template with spaces"
            )
    return template, (
        "TEMPLATE covers system, user and assistant turns; the chat template's tools are not reproduced "
        f"({problem[:300]}), so tools sent to Ollama are ignored"
    )


def build_modelfile(
    tokenizer, gguf_name: str, stop_ids: list[int], *, adds_bos: bool = False, system: str | None = None
) -> Modelfile:
    """The Modelfile text beside ``gguf_name``; see the module docstring.

    ``adds_bos``: the GGUF says ``add_bos_token``, so llama.cpp puts BOS in front of the prompt itself.
    """
    stops = [tokenizer.convert_ids_to_tokens(i) for i in stop_ids]
    lines = [f"FROM ./{gguf_name}", ""]
    template, note = None, ""
    pieces = chat_pieces(tokenizer, stops) if getattr(tokenizer, "chat_template", None) else None
    if pieces is None:
        note = "the chat template has no system/user/assistant shape we can express; Ollama detects one from the GGUF"
    else:
        runtime_bos = pieces.bos if adds_bos else ""
        if runtime_bos:
            pieces.bos = ""
        template = go_template(pieces)
        mismatch = template_mismatch(tokenizer, template, runtime_bos=runtime_bos)
        if mismatch:
            template, note = (
                None,
                f"the generated TEMPLATE did not reproduce the chat template ({mismatch[:300]})",
            )
    if template and _renders_tools(tokenizer):
        template, note = _with_tools(tokenizer, pieces, template, runtime_bos)
    if template:
        lines += ['TEMPLATE """' + template + '"""', ""]
    if system:
        lines += ['SYSTEM """' + system + '"""', ""]
    lines += [f"PARAMETER stop {json.dumps(s, ensure_ascii=False)}" for s in dict.fromkeys(stops)]
    if note:
        lines = [f"# {note}", *lines]
    return Modelfile("\n".join(lines) + "\n", template, list(dict.fromkeys(stops)), note)
