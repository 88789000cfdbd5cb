"""One module per record format; each has ``NAME``, ``parse(row, mapping)`` and ``dump(record)``.

``parse`` turns one source row (a dict, after column mapping) into a record or
raises :class:`~sftlab.data.validate.InvalidRecord`; ``dump`` returns the row to
write and the reasons for anything it could not express (``None`` as row = the
whole record was skipped, the first reason says why).
"""

from __future__ import annotations

from types import ModuleType

from sftlab.data.formats import alpaca, canonical, messages, sharegpt, text
from sftlab.errors import DataError

FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (alpaca, sharegpt, messages, text, canonical)}


def get_format(name: str) -> ModuleType:
    """The format module called ``name``; a :class:`DataError` lists the valid names."""
    try:
        return FORMATS[name]
    except KeyError:
        raise DataError(f"unknown data format '{name}'; choose one of: {', '.join(FORMATS)}") from None
