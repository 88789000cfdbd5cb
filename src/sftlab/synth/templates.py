"""Prompt templates: text files with ``$name`` placeholders, overridable from the recipe.

The built-in templates live in ``prompts/<id>.txt``; ``synth.prompts`` maps a
template id to a file of your own. Placeholders use :class:`string.Template`
syntax (``$chunk``, ``${persona}``), so JSON braces in a prompt need no escaping;
write ``$$`` for a literal dollar sign.

>>> t = Template("demo", "Hello $name.", "inline")
>>> t.render(name="Ada")
'Hello Ada.'
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import RecipeError
from sftlab.utils.hashing import fingerprint

PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True)
class Template:
    """One prompt template; ``version`` (a hash of the text) goes into provenance."""

    id: str
    text: str
    source: str

    @property
    def version(self) -> str:
        return fingerprint(self.text)[:8]

    def render(self, **values: str) -> str:
        try:
            return string.Template(self.text).substitute(values)
        except KeyError as err:
            raise RecipeError(
                [
                    f"{self.source}: template '{self.id}' uses ${err.args[0]}, which is not available; "
                    f"available: {', '.join('$' + k for k in sorted(values))}"
                ],
                source=self.source,
            ) from None
        except ValueError as err:
            raise RecipeError(
                [f"{self.source}: template '{self.id}': {err} (write $$ for a literal $)"], source=self.source
            ) from None


def builtin_ids() -> list[str]:
    """Ids of the templates shipped with sftlab."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))


def load_templates(overrides: dict[str, str]) -> dict[str, Template]:
    """Built-in templates with the recipe's overrides (id → file path) applied."""
    known = builtin_ids()
    problems = [
        f"synth.prompts.{key}: unknown template id; valid ids: {', '.join(known)}"
        for key in overrides
        if key not in known
    ]
    problems += [
        f"synth.prompts.{key}: file not found: {path}"
        for key, path in overrides.items()
        if key in known and not Path(path).is_file()
    ]
    if problems:
        raise RecipeError(problems)
    out: dict[str, Template] = {}
    for key in known:
        path = Path(overrides.get(key) or PROMPTS_DIR / f"{key}.txt")
        out[key] = Template(key, path.read_text(encoding="utf-8"), str(path))
    return out
