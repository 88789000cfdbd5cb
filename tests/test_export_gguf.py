"""GGUF export, checked by an independent reader: transformers' GGUF loader (``from_pretrained(gguf_file=)``).

The tiny models are random, which gives near-uniform logits where top-1 agreement means
nothing; :func:`_peaked` scales them so their predictions are confident and vary with the
input. Two checks catch layout bugs (a missing q/k permutation, a wrong tensor name):
the maximum relative logit error (correct: ≤ 2e-3 for f16, ≤ 2e-2 for q8_0; without the
Llama q/k permutation it is 0.04-0.9 on these models), and greedy/top-1 agreement over
~1,000 positions of real text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sftlab.errors import ModelError, SftlabError
from sftlab.export import export_model
from sftlab.export.gguf import permute_rows, write_gguf
from sftlab.models import load_model

README = Path(__file__).resolve().parents[1] / "README.md"
CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "List three primes: 2, 3, ...?"},
        {"role": "assistant", "content": "2, 3, 5."},
        {"role": "user", "content": "Now in français, s'il vous plaît! 🙂"},
    ],
]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def eval_texts(tokenizer) -> list[str]:
    """Real text (the README, ~8k characters: prose, code, tables) and rendered chats with special tokens."""
    prose = README.read_text(encoding="utf-8")[:8000]
    chats = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in CHATS]
    return [prose, *chats]


def _peaked(model, embed: float = 60.0, qk: float = 3.0, vo: float = 10.0):
    """Confident, input-dependent predictions from random weights (top-1 probability ~0.97 on text)."""
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(embed)
        for layer in model.model.layers:
            attn = layer.self_attn
            attn.q_proj.weight.mul_(qk)
            attn.k_proj.weight.mul_(qk)
            attn.v_proj.weight.mul_(vo)
            attn.o_proj.weight.mul_(vo)
    return model.eval()


def _load_gguf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def _compare(reference, exported, ids):
    with torch.inference_mode():
        a, b = reference(input_ids=ids).logits[0], exported(input_ids=ids).logits[0]
    rel = float((a - b).abs().max() / a.abs().max())
    agree = float((a.argmax(-1) == b.argmax(-1)).float().mean())
    confidence = float(a.softmax(-1).max(-1).values.mean())
    return rel, agree, confidence, int(a.argmax(-1).unique().numel())


def _greedy(model, ids, n: int = 12) -> list[int]:
    with torch.inference_mode():
        out = model.generate(input_ids=ids, max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1] :].tolist()


# ---- Llama (SmolLM2's tokenizer), through a LoRA run: merge, then GGUF ---------------------------------


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory, tokenizer):
    from peft import LoraConfig, get_peft_model

    from sftlab.testing import tiny_llama

    base_dir = tmp_path_factory.mktemp("peaked-base")
    base = _peaked(tiny_llama(tokenizer, hidden_size=64, heads=4, kv_heads=2, intermediate_size=128))
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"]))
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a real, non-zero adapter: the GGUF must hold W0 + scale·B·A
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(run / "final")
    (run / "final" / "sftlab_base.json").write_text(json.dumps({"base_model": str(base_dir)}))
    return run


@pytest.fixture(scope="module")
def llama_exports(llama_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    results = {q: export_model(str(llama_run), out / q, format="gguf", quant=q) for q in ("f16", "q8_0")}
    merged = load_model(str(llama_run), dtype="float32", device="cpu", merge_adapter=True).eval()
    return out, results, merged


def test_llama_f16_gguf_matches_the_merged_model(llama_exports, tokenizer):
    out, results, merged = llama_exports
    gguf = out / "f16" / results["f16"].gguf_file
    exported, gguf_tok = _load_gguf(gguf)
    assert type(exported).__name__ == "LlamaForCausalLM"
    texts = eval_texts(tokenizer)
    for text in texts:  # the tokenizer round-trips: same ids, specials included
        assert gguf_tok(text)["input_ids"] == tokenizer(text)["input_ids"]
    ids = tokenizer(texts[0], return_tensors="pt")["input_ids"][:, :1024]
    rel, agree, confidence, distinct = _compare(merged, exported, ids)
    assert confidence > 0.5 and distinct > 100  # peaked and input-dependent, so agreement means something
    assert rel < 2e-3 and agree >= 0.998  # f16 rounding may flip a near-tie among 1,024 positions
    for text in texts[1:]:
        prompt = tokenizer(text, return_tensors="pt")["input_ids"]
        assert _greedy(exported, prompt) == _greedy(merged, prompt)
    assert exported.config.max_position_embeddings == merged.config.max_position_embeddings
    assert gguf_tok.chat_template == tokenizer.chat_template


def test_llama_q8_0_gguf_agrees_on_the_top_token(llama_exports, tokenizer):
    from gguf import GGUFReader

    out, results, merged = llama_exports
    gguf = out / "q8_0" / results["q8_0"].gguf_file
    types = {t.name: t.tensor_type.name for t in GGUFReader(gguf).tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied head, as in the HF checkpoint
    exported, _ = _load_gguf(gguf)
    ids = tokenizer(eval_texts(tokenizer)[0], return_tensors="pt")["input_ids"][:, :1024]
    rel, agree, _, _ = _compare(merged, exported, ids)
    assert rel < 2e-2 and agree >= 0.99


def test_gguf_folder_has_modelfile_card_and_manifest(llama_exports):
    out, results, _ = llama_exports
    folder = out / "q8_0"
    names = {p.name for p in folder.iterdir()}
    assert names == {results["q8_0"].gguf_file, "Modelfile", "README.md", "sftlab_export.json"}
    modelfile = (folder / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{results['q8_0'].gguf_file}\n")
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and 'TEMPLATE """' in modelfile
    manifest = json.loads((folder / "sftlab_export.json").read_text())
    assert manifest["format"] == "gguf" and manifest["mode"] == "merged" and manifest["modelfile_template"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())
    assert folder.stat().st_mode & 0o777 == 0o755


def test_gguf_metadata_names_end_of_turn_and_special_ids(llama_exports, tokenizer):
    from gguf import GGUFReader

    out, results, _ = llama_exports
    fields = GGUFReader(out / "f16" / results["f16"].gguf_file).fields
    value = {k: f.contents() for k, f in fields.items() if not k.startswith("tokenizer.ggml.tok")}
    assert value["general.architecture"] == "llama" and value["tokenizer.ggml.model"] == "gpt2"
    assert value["tokenizer.ggml.pre"] == "gpt-2"  # the tokenizer's own pre-tokenizer: GPT-2's regex
    assert value["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert value["tokenizer.ggml.add_bos_token"] is False
    assert value["llama.context_length"] == 2048 and value["llama.rope.freq_base"] == 10000.0
    types = fields["tokenizer.ggml.token_type"].contents()
    assert types[tokenizer.convert_tokens_to_ids("<|im_start|>")] == 3  # CONTROL
    assert types[tokenizer.convert_tokens_to_ids("hello")] == 1  # NORMAL


# ---- Qwen3 and Qwen2 over the real Qwen3 tokenizer ----------------------------------------------------


def _tiny_qwen(kind: str, tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    config_class, model_class = (
        (Qwen3Config, Qwen3ForCausalLM) if kind == "qwen3" else (Qwen2Config, Qwen2ForCausalLM)
    )
    extra = {"head_dim": 128} if kind == "qwen3" else {}  # transformers' GGUF reader assumes Qwen3's 128
    config = config_class(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, **extra,
    )  # fmt: skip
    torch.manual_seed(3)
    model = _peaked(model_class(config).float(), qk=1.0, vo=8.0)  # q/k are RMS-normed per head in Qwen3
    if kind == "qwen2":
        with torch.no_grad():  # Qwen2's q/k/v biases start at zero; make them count
            for layer in model.model.layers:
                layer.self_attn.q_proj.bias.normal_(0, 0.5)
                layer.self_attn.k_proj.bias.normal_(0, 0.5)
    return model


@pytest.mark.parametrize(("kind", "quant"), [("qwen3", "q8_0"), ("qwen2", "f16")])
def test_qwen_gguf_matches_and_tokenizer_round_trips(kind, quant, qwen3_tokenizer, tmp_path):
    """Each GGUF load parses Qwen's 151k tokens and merges in Python (~20 s here): the tokenizer, the same
    for both, is read back once."""
    model = _tiny_qwen(kind, qwen3_tokenizer)
    result = write_gguf(model, qwen3_tokenizer, tmp_path / "m.gguf", quant, name=f"tiny-{kind}")
    assert result.architecture == kind and result.eot_ids[0] == qwen3_tokenizer.convert_tokens_to_ids(
        "<|im_end|>"
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    exported = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32).eval()
    assert type(exported).__name__ == f"{kind.capitalize()}ForCausalLM"
    texts = eval_texts(qwen3_tokenizer) + [
        "<think>\nreasoning</think>\n\n<tool_call>{}</tool_call> 12345 1,000"
    ]
    if kind == "qwen3":
        gguf_tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
        for text in texts:
            assert gguf_tok(text)["input_ids"] == qwen3_tokenizer(text)["input_ids"], text[:60]
        assert gguf_tok.chat_template == qwen3_tokenizer.chat_template
    ids = qwen3_tokenizer(texts[0], return_tensors="pt")["input_ids"][:, :1024]
    rel, agree, confidence, distinct = _compare(model, exported, ids)
    assert confidence > 0.5 and distinct > 100
    assert rel < (2e-3 if quant == "f16" else 2e-2) and agree >= 0.99


def test_llama3_tokenizer_round_trips_with_its_bos(llama3_real_tokenizer, tmp_path):
    from sftlab.render.templates import resolve_template
    from sftlab.testing import tiny_llama

    tok = resolve_template(llama3_real_tokenizer, "llama3")
    write_gguf(tiny_llama(tok, hidden_size=16), tok, tmp_path / "l3.gguf", "f16")
    from transformers import AutoTokenizer

    gguf_tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file="l3.gguf")
    for text in eval_texts(tok):
        assert gguf_tok(text)["input_ids"] == tok(text)["input_ids"]
    assert tok("x")["input_ids"][0] == tok.bos_token_id  # llama-bpe adds BOS, and so does the GGUF
    from gguf import GGUFReader

    fields = GGUFReader(tmp_path / "l3.gguf").fields
    assert fields["tokenizer.ggml.pre"].contents() == "llama-bpe"
    assert fields["tokenizer.ggml.add_bos_token"].contents() is True
    assert fields["tokenizer.ggml.eot_token_id"].contents() == tok.convert_tokens_to_ids("<|eot_id|>")
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tok.convert_tokens_to_ids("<|end_of_text|>")


def test_mistral_runs_on_the_llama_graph(tokenizer, tmp_path):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=None, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(5)
    model = _peaked(MistralForCausalLM(config).float())
    result = write_gguf(model, tokenizer, tmp_path / "mistral.gguf", "f16", name="tiny-mistral")
    assert result.architecture == "llama"
    exported, _ = _load_gguf(tmp_path / "mistral.gguf")
    assert type(exported).__name__ == "LlamaForCausalLM"  # the same graph; untied head as output.weight
    ids = tokenizer(eval_texts(tokenizer)[0], return_tensors="pt")["input_ids"][:, :512]
    rel, agree, _, _ = _compare(model, exported, ids)
    assert rel < 2e-3 and agree >= 0.99


# ---- refusals ----------------------------------------------------------------------------------------


def test_unsupported_architecture_is_one_clear_line(tokenizer, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        folder
    )
    tokenizer.save_pretrained(folder)
    with pytest.raises(ModelError, match="'gpt2' architecture; supported: llama, mistral, qwen2, qwen3"):
        export_model(str(folder), tmp_path / "out", format="gguf")
    assert not (tmp_path / "out").exists()


def test_bad_options_are_reported_together(tiny_model_dir, tmp_path):
    with pytest.raises(SftlabError, match="--format onnx.*--quant q3_k"):
        export_model(str(tiny_model_dir), tmp_path / "o", format="onnx", quant="q3_k")
    with pytest.raises(SftlabError, match="--adapter-only .* --format gguf"):
        export_model(str(tiny_model_dir), tmp_path / "o", format="gguf", adapter_only=True)


def test_permutation_interleaves_rotary_halves_per_head():
    import numpy as np

    w = np.arange(16, dtype=np.float32).reshape(8, 2)
    p = permute_rows(w, 2)  # 2 heads of 4 rows: [0, 2, 1, 3] within each head
    assert p[:, 0].tolist() == [0, 4, 2, 6, 8, 12, 10, 14]


def test_cli_export_gguf(llama_run, tmp_path, capsys):
    from sftlab.cli.main import main

    assert (
        main(["export", str(llama_run), "--format", "gguf", "--quant", "q4_0", "--out", str(tmp_path / "g")])
        == 0
    )
    assert "Modelfile with TEMPLATE" in capsys.readouterr().out
    assert (
        main(["export", str(llama_run), "--format", "gguf", "--quant", "q9", "--out", str(tmp_path / "h")])
        == 1
    )
    assert "--quant q9: choose one of" in capsys.readouterr().err


@pytest.mark.slow
def test_embedded_135m_with_a_lora_adapter_exports_to_a_gguf_that_answers_like_it(tmp_path):
    """The quickstart's model (SmolLM2-135M with a LoRA adapter, merged) → q8_0 GGUF → the same answers.

    Measured on 1,024 README positions: f16 agrees on 99.8% of top-1 tokens, q8_0 on 97.5%; the rest are
    positions where the model itself hesitates (mean top-1 probability 0.34 on this markdown).
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from sftlab.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    base = load_model("smollm2-135m-instruct", dtype="float32", device="cpu")
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    torch.manual_seed(4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    merged = model.merge_and_unload().eval()
    write_gguf(merged, tok, tmp_path / "smol.gguf", "q8_0")
    exported = AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file="smol.gguf", dtype=torch.float32
    ).eval()
    ids = tok(README.read_text(encoding="utf-8")[:3000], return_tensors="pt")["input_ids"][:, :384]
    with torch.inference_mode():
        a, b = merged(input_ids=ids).logits[0], exported(input_ids=ids).logits[0]
    agree = a.argmax(-1) == b.argmax(-1)
    sure = a.softmax(-1).max(-1).values >= 0.5
    assert float(agree.float().mean()) >= 0.95 and float(agree[sure].float().mean()) >= 0.99
    chat = tok.apply_chat_template(CHATS[0], tokenize=False, add_generation_prompt=True)
    prompt = tok(chat, return_tensors="pt")["input_ids"]
    assert _greedy(exported, prompt, 8) == _greedy(merged, prompt, 8)
