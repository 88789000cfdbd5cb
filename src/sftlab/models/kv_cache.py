"""The key-value cache argument across transformers versions: ``past_key_values`` was renamed ``cache``.

Passing the old name to a model that has the new one works but warns on every call (and will stop
working), so callers ask the model's own ``forward`` which name it takes.
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_kwarg(model) -> str:
    """``"cache"`` or ``"past_key_values"``: the name ``model.forward`` takes for a KV cache."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_of(output: Any) -> Any:
    """The updated cache of a forward's output, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)
