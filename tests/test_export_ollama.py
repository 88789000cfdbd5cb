"""The Ollama Modelfile: its Go TEMPLATE renders what the Jinja chat template renders.

Two independent renderers meet here: Jinja runs the model's own chat template
(transformers' ``apply_chat_template``), and the Go template is run by
:mod:`sftlab.export.gotemplate`, whose semantics are checked against Go's real
``text/template`` when a Go toolchain is installed. The conversations differ from the
ones the exporter checks itself with, and carry text a template could mangle
(newlines, quotes, backslashes, braces, template syntax, non-ASCII).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from sftlab.errors import SftlabError
from sftlab.export.gguf_vocab import end_of_turn_ids
from sftlab.export.gotemplate import GoTemplateError, render
from sftlab.export.ollama import build_modelfile, ollama_values
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


def test_a_template_with_tools_says_the_modelfile_leaves_them_out(qwen3_tokenizer, tokenizer):
    qwen = build_modelfile(qwen3_tokenizer, "m.gguf", end_of_turn_ids(qwen3_tokenizer))
    assert qwen.template and "tools sent to Ollama are ignored" in qwen.note
    assert qwen.text.startswith("# TEMPLATE covers system, user and assistant turns")
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


@pytest.mark.parametrize(
    "template", ["{{ with .X }}{{ end }}", "{{ .A | printf }}", "{{ if .A }}", "{{ json .A }}", "{{ end }}"]
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
	t := template.Must(template.New("t").Parse(in.Template))
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
        for messages in CONVERSATIONS:
            data = ollama_values(messages)
            go = subprocess.run(
                [str(binary)], input=json.dumps({"Template": template, "Data": data}), capture_output=True,
                text=True, check=True, timeout=60,
            )  # fmt: skip
            assert go.stdout == render(template, data)
