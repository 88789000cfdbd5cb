"""The tokenizer as llama.cpp reads it from a GGUF: tokens, token types, merges, pre-tokenizer, special ids.

llama.cpp does not run ``tokenizer.json``; it rebuilds the tokenizer from metadata.
Two things decide whether it cuts text into the ids the model was trained on:

* ``tokenizer.ggml.pre`` names the regex that splits text before BPE. We read it off
  the pre-tokenizer in ``tokenizer.json`` (a regex we know, or GPT-2's built-in one)
  and refuse one we do not know: a wrong guess would tokenize digits or whitespace
  differently, silently.
* token types: added tokens marked special (or spelled like ``<|...|>``) are CONTROL,
  so llama.cpp never prints them and never produces them from plain text; other added
  tokens (``<think>``) are USER_DEFINED, matched whole; ids the tokenizer does not use
  (a padded embedding) are UNUSED ``[PADn]``, as llama.cpp's own converter writes them.

Merges, special token ids, ``add_bos``/``add_eos`` and the chat template come from
``gguf.SpecialVocab`` (llama.cpp's own reader of a tokenizer folder).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sftlab.errors import ModelError

PRE_TOKENIZER_REGEXES = {
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "tekken": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
"""llama.cpp's pre-tokenizer names for the split regexes we recognise (llama-vocab.cpp has the same regexes)."""

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5


@dataclass
class GgufVocab:
    """What goes into the ``tokenizer.*`` keys of the GGUF."""

    model: str  # tokenizer.ggml.model: "gpt2" (byte-level BPE)
    pre: str
    tokens: list[str]
    types: list[int]
    eot_ids: list[int] = field(default_factory=list)
    """End-of-turn ids the chat template writes after an assistant message (besides EOS)."""
    special: object = None  # gguf.SpecialVocab


def build_vocab(tokenizer, vocab_size: int, eot_ids: list[int]) -> GgufVocab:
    """The GGUF vocabulary of ``tokenizer`` for a model with ``vocab_size`` embedding rows."""
    import gguf

    state = (
        json.loads(tokenizer.backend_tokenizer.to_str()) if hasattr(tokenizer, "backend_tokenizer") else None
    )
    if not state or state.get("model", {}).get("type") != "BPE" or state["model"].get("byte_fallback"):
        kind = (state or {}).get("model", {}).get("type", type(tokenizer).__name__)
        raise ModelError(
            f"GGUF export supports byte-level BPE tokenizers (SmolLM2, Llama 3, Qwen2/3, Mistral Tekken); this "
            f"tokenizer is {kind}{' with byte fallback (sentencepiece style)' if kind == 'BPE' else ''}. Export the "
            "HF folder (--format hf) and convert it with llama.cpp's convert_hf_to_gguf.py"
        )
    pre = pre_tokenizer_name(state.get("pre_tokenizer"))
    tokens, types = _tokens_and_types(tokenizer, vocab_size)
    with tempfile.TemporaryDirectory(prefix="sftlab-gguf-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        special = gguf.SpecialVocab(Path(tmp), load_merges=True, n_vocab=vocab_size)
    probe = tokenizer("a")["input_ids"]
    special.add_special_token["bos"] = tokenizer.bos_token_id is not None and probe[:1] == [
        tokenizer.bos_token_id
    ]
    special.add_special_token["eos"] = tokenizer.eos_token_id is not None and probe[-1:] == [
        tokenizer.eos_token_id
    ]
    extra = [i for i in eot_ids if i != tokenizer.eos_token_id]
    if extra and "eot" not in special.special_token_ids:
        special.special_token_ids["eot"] = extra[0]
    return GgufVocab("gpt2", pre, tokens, types, eot_ids, special)


def pre_tokenizer_name(pre: dict | None) -> str:
    """llama.cpp's name for a ``tokenizer.json`` pre-tokenizer.

    >>> pre_tokenizer_name({"type": "ByteLevel", "use_regex": True})
    'gpt-2'
    >>> pre_tokenizer_name({"type": "Sequence", "pretokenizers": [
    ...     {"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True}]})
    'smollm'
    """
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits")
        and steps[1].get("use_regex", True)
    ):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        regex = steps[0].get("pattern", {}).get("Regex")
        for name, known in PRE_TOKENIZER_REGEXES.items():
            if regex == known:
                return name
        raise ModelError(
            f"the tokenizer splits text with a regex llama.cpp may not know ({regex!r}); a GGUF would tokenize "
            f"differently from training. Known: {', '.join(PRE_TOKENIZER_REGEXES)}, gpt-2, smollm"
        )
    raise ModelError(
        f"the tokenizer's pre-tokenizer ({' + '.join(map(str, kinds)) or 'none'}) has no llama.cpp equivalent we "
        "know; GGUF export would tokenize differently from training"
    )


def _tokens_and_types(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings by id (byte-level spelling for BPE tokens, plain text for added ones) and their types."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    if max(by_id) >= vocab_size:
        raise ModelError(
            f"the tokenizer has ids up to {max(by_id)} but the model's embedding has only {vocab_size} rows; "
            "resize the embeddings (model.resize_token_embeddings) before exporting"
        )
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(TOKEN_UNUSED)
        elif i in added:
            tok = added[i]
            tokens.append(tok.content)
            types.append(TOKEN_CONTROL if tok.special or _looks_special(tok.content) else TOKEN_USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(TOKEN_NORMAL)
    return tokens, types


def _looks_special(text: str) -> bool:
    """Added tokens that are control tokens in spirit though not marked special (llama.cpp's rule)."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def end_of_turn_ids(tokenizer) -> list[int]:
    """The special token the chat template writes right after an assistant message's text, then EOS.

    ChatML's ``...<|im_start|>assistant\\nXYZ<|im_end|>\\n`` gives ``<|im_end|>``; Llama 3's gives ``<|eot_id|>``.
    """
    template = getattr(tokenizer, "chat_template", None)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if not template:
        return eos
    marker = "Zq7Marker"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}], tokenize=False
    )
    after = text[text.rindex(marker) + len(marker) :]
    specials = set(tokenizer.all_special_tokens) | {
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special or _looks_special(t.content)
    }
    found = []
    for piece in sorted(specials, key=len, reverse=True):
        position = after.lstrip().find(piece)
        if position == 0:
            found.append(tokenizer.convert_tokens_to_ids(piece))
            break
    return list(dict.fromkeys(found + eos))
