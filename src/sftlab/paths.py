"""Where sftlab keeps its cache (converted models, tokenized data)."""

from __future__ import annotations

import os
from pathlib import Path


def sftlab_home() -> Path:
    """``$SFTLAB_HOME``, else ``$XDG_CACHE_HOME/sftlab``, else ``~/.cache/sftlab``."""
    env = os.environ.get("SFTLAB_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sftlab"
