"""Write a Hugging Face causal LM as a GGUF file that llama.cpp (and Ollama, LM Studio) run.

The file is written with the ``gguf`` package (maintained with llama.cpp), following
what llama.cpp's ``convert_hf_to_gguf.py`` writes for these architectures:

* tensor names from ``gguf.get_tensor_name_map`` (``model.layers.3.self_attn.q_proj.weight``
  → ``blk.3.attn_q.weight``); a tied output head is left out, as in the HF checkpoint;
* Llama-family q/k rows permuted: HF applies rotary embeddings to the two halves of a
  head (``rotate_half``), llama.cpp's Llama graph to interleaved pairs, so each head's
  rows are re-ordered ``[0, d/2, 1, d/2+1, ...]``. Qwen2/Qwen3 use the half layout in
  llama.cpp too and are written as they are;
* 1-D tensors (norms, biases) stay F32; 2-D tensors take the requested type, falling back
  to F16 where a row is not a whole number of quantization blocks (llama.cpp does the same);
* hyperparameters, rope base and scaling, context length, and the tokenizer
  (:mod:`sftlab.export.gguf_vocab`) with its chat template and end-of-turn ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from sftlab.errors import ModelError, SftlabError
from sftlab.export.gguf_vocab import build_vocab, end_of_turn_ids

ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
"""HF ``model_type`` → llama.cpp architecture name (Mistral runs on llama.cpp's Llama graph)."""
PERMUTE_QK = {"llama", "mistral"}

QUANTS = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
"""Types the ``gguf`` package can write in Python (k-quants and i-quants need llama.cpp's quantize tool)."""


@dataclass
class GgufResult:
    path: str
    architecture: str
    quant: str
    tensors: int
    fallback_f16: list[str] = field(default_factory=list)
    """2-D tensors whose rows are not whole quantization blocks, written as F16 instead."""
    eot_ids: list[int] = field(default_factory=list)
    context_length: int = 0
    adds_bos: bool = False
    """``tokenizer.ggml.add_bos_token``: llama.cpp puts BOS in front of every prompt itself."""


def check_supported(config, quant: str) -> str:
    """The llama.cpp architecture for ``config``, or one line naming what is supported."""
    if quant not in QUANTS:
        raise SftlabError(f"--quant {quant}: choose one of {', '.join(QUANTS)}")
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ModelError(
            f"GGUF export does not support the '{model_type}' architecture; supported: "
            f"{', '.join(sorted(ARCHITECTURES))}. Export a Hugging Face folder (--format hf) instead"
        )
    return ARCHITECTURES[model_type]


def write_gguf(model, tokenizer, path: str | Path, quant: str = "f16", *, name: str = "") -> GgufResult:
    """Write ``model`` (a transformers causal LM) and ``tokenizer`` to ``path``; see the module docstring."""
    import gguf

    config = model.config
    arch = check_supported(config, quant)
    eot = end_of_turn_ids(tokenizer)
    vocab = build_vocab(tokenizer, config.vocab_size, eot)
    # Tensor data spools to a temporary file as it is converted: memory holds one tensor, not the model twice.
    writer = gguf.GGUFWriter(str(path), arch, use_temp_file=True)
    _write_hparams(writer, config, quant, name or getattr(config, "name_or_path", "") or "model")
    _write_vocab(writer, vocab)
    result = GgufResult(str(path), arch, quant, 0, eot_ids=eot, context_length=config.max_position_embeddings)
    result.adds_bos = bool(vocab.special.add_special_token.get("bos"))
    for gguf_name, array in _tensors(model, arch):
        data, qtype = _encode(array, quant)
        if qtype == gguf.GGMLQuantizationType.F16 and quant not in ("f16",) and array.ndim == 2:
            result.fallback_f16.append(gguf_name)
        writer.add_tensor(gguf_name, data, raw_dtype=qtype)
        result.tensors += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return result


def _write_hparams(writer, config, quant: str, name: str) -> None:
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    rope = rope_parameters(config)
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    _write_rope_scaling(writer, rope)
    writer.add_file_type(getattr(gguf.LlamaFileType, _FILE_TYPES[quant]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


_FILE_TYPES = {
    "f32": "ALL_F32",
    "f16": "MOSTLY_F16",
    "bf16": "MOSTLY_BF16",
    "q8_0": "MOSTLY_Q8_0",
    "q5_1": "MOSTLY_Q5_1",
    "q5_0": "MOSTLY_Q5_0",
    "q4_1": "MOSTLY_Q4_1",
    "q4_0": "MOSTLY_Q4_0",
}


def rope_parameters(config) -> dict:
    """Rope settings whichever way the config spells them (5.x ``rope_parameters``, 4.x top-level keys)."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    if "full_attention" in params:  # per-layer-type rope (not for these architectures, but be safe)
        params = dict(params["full_attention"])
    legacy = getattr(config, "rope_scaling", None)
    if not params and isinstance(legacy, dict):
        params = dict(legacy)
    if "rope_theta" not in params and getattr(config, "rope_theta", None) is not None:
        params["rope_theta"] = config.rope_theta
    params.setdefault("rope_type", params.pop("type", "default"))
    return params


def _write_rope_scaling(writer, rope: dict) -> None:
    import gguf

    kind = rope.get("rope_type", "default")
    if kind == "default":
        return
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        if rope.get("original_max_position_embeddings"):
            writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    elif kind != "llama3":  # llama3 scaling travels as the rope_freqs tensor
        raise ModelError(
            f"GGUF export does not support rope scaling '{kind}'; supported: default, linear, yarn, llama3"
        )


def _tensors(model, arch: str):
    """``(gguf name, float32 array)`` for every weight, q/k permuted for the Llama family."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(_arch_enum(arch), config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    permute = config.model_type in PERMUTE_QK
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ModelError(f"GGUF export: no llama.cpp name for tensor '{hf_name}' of a {arch} model")
        array = tensor.detach().float().cpu().numpy()
        if permute and ".attn_q." in gguf_name:
            array = permute_rows(array, heads)
        elif permute and ".attn_k." in gguf_name:
            array = permute_rows(array, kv_heads)
        yield gguf_name, array
    factors = llama3_rope_factors(config)
    if factors is not None:
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", factors


def _arch_enum(arch: str):
    import gguf

    return next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)


def permute_rows(weight, n_head: int):
    """Per head, rows ``[0..d/2)`` and ``[d/2..d)`` interleaved: HF's rotary halves → llama.cpp's pairs.

    >>> import numpy as np
    >>> permute_rows(np.arange(8).reshape(8, 1), 2)[:, 0].tolist()
    [0, 2, 1, 3, 4, 6, 5, 7]
    """
    shape = weight.shape
    return weight.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def llama3_rope_factors(config):
    """Llama 3.1's frequency-dependent rope scaling as the per-dimension factors llama.cpp reads."""
    import numpy as np

    rope = rope_parameters(config)
    if rope.get("rope_type") != "llama3":
        return None
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    base = float(rope.get("rope_theta", 10000.0))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_context = float(rope.get("original_max_position_embeddings", 8192))
    out = []
    for i in range(0, dim, 2):
        wavelength = 2 * math.pi * base ** (i / dim)
        if wavelength < old_context / high:
            out.append(1.0)
        elif wavelength > old_context / low:
            out.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _encode(array, quant: str):
    """The bytes (or array) to store and their GGML type."""
    import gguf
    import numpy as np

    types = gguf.GGMLQuantizationType
    if array.ndim < 2 or quant == "f32":
        return array.astype(np.float32), types.F32
    if quant == "f16":
        return array.astype(np.float16), types.F16
    qtype = getattr(types, quant.upper())
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if array.shape[-1] % block:
        return array.astype(np.float16), types.F16
    return gguf.quants.quantize(array, qtype), qtype


def _write_vocab(writer, vocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    vocab.special.add_to_gguf(writer, quiet=True)
