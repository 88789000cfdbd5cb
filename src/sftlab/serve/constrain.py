"""Constrained decoding with llguidance: JSON schemas and tool-call grammars the output must match.

llguidance (maintained by Microsoft's guidance team, also used by vLLM, SGLang and llama.cpp)
compiles a JSON schema or a Lark grammar into a token-level matcher; before each token the
matcher says which tokens may come next, and the others get ``-inf``. It installs as one wheel
with no dependencies, builds its tokenizer view from the model's fast tokenizer in about a
second, computes a mask in well under a millisecond on a CPU, and names the schema keyword it
does not implement instead of ignoring it (``lenient`` off), which is what a 400 needs.

JSON is generated compact (``", "`` and ``": "`` separators, no free whitespace): with free
whitespace a weak model can emit blanks until ``max_tokens`` and never close the object.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from sftlab.serve.schemas import ApiError

JSON_OPTIONS = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False, "lenient": False}
"""Forced on every schema (as llguidance ``overrides``), whatever ``x-guidance`` the schema carries."""


class Grammars:
    """Compiles and checks grammars for one tokenizer; the llguidance tokenizer is built on first use."""

    def __init__(self, tokenizer, eos_ids: set[int], vocab_size: int):
        self.tokenizer = tokenizer
        self.eos_ids = sorted(eos_ids)
        self.vocab_size = vocab_size
        self._ll = None
        self._lock = threading.Lock()

    @property
    def ll_tokenizer(self):
        """llguidance's view of the tokenizer (about a second to build; built once, thread-safe)."""
        with self._lock:
            if self._ll is None:
                import llguidance.hf

                self._ll = llguidance.hf.from_tokenizer(
                    self.tokenizer, n_vocab=max(self.vocab_size, len(self.tokenizer)), eos_token=self.eos_ids
                )
            return self._ll

    def json_schema(self, schema: dict[str, Any], param: str) -> str:
        """A checked grammar for ``schema``; an unsupported or broken schema is a 400 naming ``param``."""
        from llguidance import LLMatcher

        try:
            grammar = LLMatcher.grammar_from_json_schema(json.dumps(schema), overrides=JSON_OPTIONS)
        except ValueError as err:
            raise ApiError(400, f"{param}: the JSON schema cannot be read: {err}", param=param) from None
        return self.check(grammar, param, "the JSON schema")

    def lark(self, text: str, param: str) -> str:
        from llguidance import LLMatcher

        return self.check(LLMatcher.grammar_from_lark(text), param, "the grammar built from it")

    def check(self, grammar: str, param: str, what: str) -> str:
        from llguidance import LLMatcher

        error = LLMatcher.validate_grammar(grammar, self.ll_tokenizer)
        if error:
            raise ApiError(
                400, f"{param}: {what} is not supported for constrained decoding: {error}", param=param
            )
        return grammar

    def matcher(self, grammar: str) -> Matcher:
        return Matcher(self.ll_tokenizer, grammar)


class Matcher:
    """One sequence's position in its grammar: masks its logits row and follows the chosen tokens."""

    def __init__(self, ll_tokenizer, grammar: str):
        from llguidance import LLMatcher

        self.vocab = ll_tokenizer.vocab_size
        self.eos = ll_tokenizer.eos_token
        self._m = LLMatcher(ll_tokenizer, grammar, log_level=0)
        if self._m.is_error():
            raise ValueError(f"grammar error: {self._m.get_error()}")

    def mask(self, row) -> None:
        """Set ``-inf`` on every token of ``row`` the grammar does not allow next."""
        import numpy as np
        import torch

        if self._m.is_error() or self._m.is_stopped():
            allowed = torch.zeros(row.shape[0], dtype=torch.bool)
            allowed[self.eos] = True
        else:
            bits = np.unpackbits(np.frombuffer(self._m.compute_bitmask(), dtype=np.uint8), bitorder="little")
            allowed = torch.zeros(row.shape[0], dtype=torch.bool)
            n = min(row.shape[0], self.vocab)
            allowed[:n] = torch.from_numpy(bits[:n].astype(bool))
        row.masked_fill_(~allowed.to(row.device), float("-inf"))

    def consume(self, token: int) -> None:
        if not self._m.is_stopped():
            self._m.consume_token(token)

    @property
    def accepting(self) -> bool:
        return self._m.is_accepting()


def token_bytes(grammars: Grammars):
    """A function from token id to its bytes (for log-probabilities), via llguidance's tokenizer."""
    ll = grammars.ll_tokenizer
    tokenizer = grammars.tokenizer

    def of(token: int) -> bytes:
        raw = ll.decode_bytes([token]) if token < ll.vocab_size else b""
        return raw or str(tokenizer.convert_ids_to_tokens(token) or "").encode()

    return of
