"""Every ``>>>`` example in the package's docstrings runs and shows what it really prints."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sftlab

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(sftlab.__path__, "sftlab.") if not m.name.endswith("__main__")
)


def _with_examples(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return (
        spec is not None and spec.origin is not None and ">>>" in open(spec.origin, encoding="utf-8").read()
    )


@pytest.mark.parametrize("name", [m for m in MODULES if _with_examples(m)])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
