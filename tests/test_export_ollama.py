"""The Ollama Modelfile: its Go TEMPLATE renders what the Jinja chat template renders.

Two independent renderers meet here: Jinja runs the model's own chat template
(transformers' ``apply_chat_template``), and the Go template is run by
:mod:`sftlab.export.gotemplate`, whose semantics are checked against Go's real
``text/template`` when a Go toolchain is installed. The conversations differ from the
ones the exporter checks itself with, and carry text a template could mangle
(newlines, quotes, backslashes, braces, template syntax, non-ASCII).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest

from sftlab.errors import SftlabError
from sftlab.export.gguf_vocab import end_of_turn_ids
from sftlab.export.gotemplate import GoTemplateError, render
from sftlab.export.ollama import build_modelfile, ollama_values
from sftlab.export.ollama_tools import same_up_to_json
from sftlab.render.templates import resolve_template

CONVERSATIONS = [
    [{"role": "user", "content": 'Quote: "x" and \\n literal, {{ .System }} and {% raw %}'}],
    [
        {"role": "system", "content": "  Leading spaces.\n\nTwo paragraphs.  "},
        {"role": "user", "content": "ok?"},
    ],
    [
        {"role": "user", "content": "Première question — ça va ?"},
        {"role": "assistant", "content": "Oui.\n"},
        {"role": "user", "content": "日本語で答えて"},
        {"role": "assistant", "content": "はい"},
        {"role": "user", "content": "\n"},
    ],
    [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ],
]


def _family(name: str, tokenizer, qwen3_tokenizer, llama3_real_tokenizer):
    if name == "smollm2":
        return tokenizer, False
    if name == "qwen3":
        return qwen3_tokenizer, False
    if name == "llama3":  # llama-bpe adds BOS itself, so the Modelfile template must not write it again
        return resolve_template(llama3_real_tokenizer, "llama3"), True
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    return resolve_template(tok, name), False


@pytest.mark.parametrize("family", ["smollm2", "qwen3", "llama3", "chatml"])
def test_modelfile_template_renders_like_the_chat_template(
    family, tokenizer, qwen3_tokenizer, llama3_real_tokenizer
):
    tok, adds_bos = _family(family, tokenizer, qwen3_tokenizer, llama3_real_tokenizer)
    stops = end_of_turn_ids(tok)
    modelfile = build_modelfile(tok, "m.gguf", stops, adds_bos=adds_bos)
    assert modelfile.template is not None, modelfile.note
    bos = tok.bos_token if adds_bos else ""
    for messages in CONVERSATIONS:
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert bos + render(modelfile.template, ollama_values(messages)) == expected
    for stop in modelfile.stops:
        assert f"PARAMETER stop {json.dumps(stop)}" in modelfile.text
    assert "\nFROM ./m.gguf\n" in "\n" + modelfile.text


def test_stops_cover_every_end_of_turn_token(llama3_real_tokenizer, tokenizer):
    tok = resolve_template(llama3_real_tokenizer, "llama3")
    assert build_modelfile(tok, "m.gguf", end_of_turn_ids(tok)).stops == ["<|eot_id|>", "<|end_of_text|>"]
    assert build_modelfile(tokenizer, "m.gguf", end_of_turn_ids(tokenizer)).stops == ["<|im_end|>"]


def test_template_that_folds_the_system_prompt_into_a_user_turn_gets_a_note_not_a_wrong_template(tokenizer):
    from transformers import AutoTokenizer

    tok = resolve_template(AutoTokenizer.from_pretrained(tokenizer.name_or_path), "mistral")
    modelfile = build_modelfile(tok, "m.gguf", end_of_turn_ids(tok))
    assert modelfile.template is None and "TEMPLATE" not in modelfile.text
    assert modelfile.note and modelfile.text.startswith("# ")
    assert "FROM ./m.gguf" in modelfile.text


SEARCH = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": 'Search the docs; "quotes", \\backslashes\\ & <tags>',
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
TOOL_CONVERSATION = [
    {"role": "system", "content": "You help with the docs."},
    {"role": "user", "content": "Find 'export' — and how to serve?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "search_docs", "arguments": {"query": "export", "limit": 3}},
            },
            {"type": "function", "function": {"name": "search_docs", "arguments": {"query": "serve «fr»"}}},
        ],
    },
    {"role": "tool", "content": "export: sftlab export RUN --format gguf"},
    {"role": "tool", "content": "serve: sftlab serve RUN"},
]


def test_qwen_tools_render_in_the_modelfile_template_as_in_the_chat_template(qwen3_tokenizer):
    """Tools in the system turn, two calls in one assistant turn, two results in one turn, then generation:
    the same text from both renderers except JSON spacing (Go's json.Marshal is compact)."""
    modelfile = build_modelfile(qwen3_tokenizer, "m.gguf", end_of_turn_ids(qwen3_tokenizer))
    assert ".Tools" in modelfile.template and ".ToolCalls" in modelfile.template
    assert "except the JSON of tools and arguments" in modelfile.note
    for messages in (TOOL_CONVERSATION, TOOL_CONVERSATION[1:], TOOL_CONVERSATION[:2]):
        expected = qwen3_tokenizer.apply_chat_template(
            messages, tools=[SEARCH], tokenize=False, add_generation_prompt=True
        )
        got = render(modelfile.template, ollama_values(messages, [SEARCH]))
        assert same_up_to_json(got, expected), (got, expected)
        assert got != expected  # the JSON really is printed differently, so the comparison above did work
        assert got.count("<tool_call>") == expected.count("<tool_call>")
    # with no tools the template is exactly the chat template, as before
    for messages in CONVERSATIONS:
        expected = qwen3_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert render(modelfile.template, ollama_values(messages)) == expected
    # an answer that is wrong outside the JSON is caught
    broken = modelfile.template.replace("<tool_response>", "<tool_result>", 1)
    messages = TOOL_CONVERSATION
    expected = qwen3_tokenizer.apply_chat_template(
        messages, tools=[SEARCH], tokenize=False, add_generation_prompt=True
    )
    assert not same_up_to_json(render(broken, ollama_values(messages, [SEARCH])), expected)


def test_a_tool_format_we_cannot_express_gets_the_note_and_no_tools(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (
        "{% if tools %}{{ 'Tools: ' }}{% for t in tools %}{{ t.function.name }} {% endfor %}{{ '\\n' }}{% endif %}"
        "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    modelfile = build_modelfile(tok, "m.gguf", end_of_turn_ids(tok))
    assert modelfile.template and ".Tools" not in modelfile.template
    assert "tools sent to Ollama are ignored" in modelfile.note and modelfile.text.startswith(
        "# TEMPLATE covers"
    )
    assert build_modelfile(tokenizer, "m.gguf", end_of_turn_ids(tokenizer)).note == ""  # SmolLM2 has no tools


def test_default_system_prompt_of_the_template_is_kept(tokenizer):
    modelfile = build_modelfile(tokenizer, "m.gguf", end_of_turn_ids(tokenizer))
    assert "You are a helpful AI assistant named SmolLM" in modelfile.template


# ---- the interpreter itself ----------------------------------------------------------------------------


def test_interpreter_trims_like_go_and_evaluates_branches():
    data = {
        "Messages": [{"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "yo"}],
        "System": "",
    }
    template = (
        "A  {{- range $i, $m := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        '{{- if eq .Role "user" }}[u:{{ .Content }}]{{ else if $last }}[last:{{ $m.Content }}]{{ else }}?{{ end -}}\n'
        '  {{ end }}|{{ if .System }}sys{{ else }}none{{ end }}|{{ index .Messages 1 "Role" }}'
    )
    assert render(template, data) == "A[u:hi][last:yo]|none|assistant"


def test_interpreter_assigns_outer_variables_and_prints_json_as_go_does():
    template = '{{ $p := "-" }}{{ range .M }}{{ $p }}>{{ .R }} {{ $p = .R }}{{ end }}|{{ $p }}|{{ json .J }}'
    data = {"M": [{"R": "user"}, {"R": "tool"}], "J": {"b": [1, "<&>"], "a": "é"}}
    assert render(template, data) == '->user user>tool |tool|{"a":"é","b":[1,"\\u003c\\u0026\\u003e"]}'
    with pytest.raises(GoTemplateError, match="undefined variable"):
        render("{{ $q = 1 }}", {})


@pytest.mark.parametrize(
    "template", ["{{ with .X }}{{ end }}", "{{ .A | printf }}", "{{ if .A }}", "{{ toJson .A }}", "{{ end }}"]
)
def test_interpreter_refuses_what_it_does_not_know(template):
    with pytest.raises(GoTemplateError):
        render(template, {"A": 1})
    assert issubclass(GoTemplateError, SftlabError)


GO_PROGRAM = """package main

import ("encoding/json"; "os"; "text/template")

func main() {
	var in struct { Template string; Data map[string]any }
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil { panic(err) }
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	t := template.Must(template.New("t").Funcs(funcs).Parse(in.Template))
	if err := t.Execute(os.Stdout, in.Data); err != nil { panic(err) }
}
"""


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain to compare with text/template")
def test_interpreter_agrees_with_go_text_template(
    tmp_path, tokenizer, qwen3_tokenizer, llama3_real_tokenizer
):
    program = tmp_path / "render.go"
    program.write_text(GO_PROGRAM)
    binary = tmp_path / "render"
    subprocess.run(["go", "build", "-o", str(binary), str(program)], check=True, cwd=tmp_path, timeout=300)
    for family in ("smollm2", "qwen3", "llama3"):
        tok, adds_bos = _family(family, tokenizer, qwen3_tokenizer, llama3_real_tokenizer)
        template = build_modelfile(tok, "m.gguf", end_of_turn_ids(tok), adds_bos=adds_bos).template
        cases = [ollama_values(m) for m in CONVERSATIONS] + [ollama_values(TOOL_CONVERSATION, [SEARCH])]
        for data in cases:
            go = subprocess.run(
                [str(binary)], input=json.dumps({"Template": template, "Data": data}), capture_output=True,
                text=True, check=True, timeout=60,
            )  # fmt: skip
            assert go.stdout == render(template, data)
