"""Model references, the embedded default, GGUF conversion cache and the tiny test models."""

from __future__ import annotations

import json

import pytest

from sftlab.cli.main import main
from sftlab.errors import ModelError
from sftlab.models import load_model, load_tokenizer, resolve_model


def test_embedded_model_resolves_to_cached_safetensors():
    resolved = resolve_model("smollm2-135m-instruct")
    assert resolved.kind == "embedded"
    from pathlib import Path

    folder = Path(resolved.path)
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin"))
    assert (folder / "chat_template.jinja").is_file() or "chat_template" in (
        folder / "tokenizer_config.json"
    ).read_text()


def test_tokenizer_has_chatml_template(tokenizer):
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nhi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.pad_token is not None


def test_tiny_model_folder_loads(tiny_model_dir):
    model = load_model(str(tiny_model_dir), device="cpu")
    tok = load_tokenizer(str(tiny_model_dir))
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert model.config.vocab_size == len(tok)


def test_model_info_cli_on_folder(tiny_model_dir, capsys):
    assert main(["model", "info", str(tiny_model_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "LlamaForCausalLM"
    assert info["chat_template"] is True
    assert info["layers"] == 2


@pytest.mark.parametrize(
    "reference, fragment",
    [
        ("no-such-model", "unknown model 'no-such-model'"),
        ("./missing/folder", "model path not found"),
        ("missing.gguf", "GGUF file not found"),
    ],
)
def test_bad_references_are_one_line_errors(reference, fragment):
    with pytest.raises(ModelError, match=fragment):
        resolve_model(reference)


def test_uncached_hub_id_offline_is_clear(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["model", "info", "nobody-here/not-a-cached-model"])
    err = capsys.readouterr().err
    assert code == 1
    assert "not in the local Hugging Face cache" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_embedded_model_info_and_generation(capsys):
    assert main(["model", "info", "smollm2-135m-instruct", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert abs(info["parameters"] - 134.5e6) < 0.1e6
    assert info["chat_template"] is True
    assert (
        main(
            ["generate", "smollm2-135m-instruct", "What is the capital of France?", "--max-new-tokens", "24"]
        )
        == 0
    )
    assert "Paris" in capsys.readouterr().out
