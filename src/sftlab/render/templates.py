"""Chat templates: the model's own, a built-in one, or a ``.jinja`` file.

Training must render with exactly the template used at inference, so the chosen
template is written into ``tokenizer.chat_template`` and every later step (render,
preview, generation, export) reads it from there. ``render.template_kwargs`` go
into the same place, as ``{% set %}`` lines at the top of the template, so that a
server or ``generate`` that knows nothing of the recipe still renders Qwen3 with
``enable_thinking: false`` when training did.

>>> sorted(BUILTIN_TEMPLATES)
['alpaca', 'chatml', 'llama3', 'mistral', 'plain']
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sftlab.errors import SftlabError

_DIR = Path(__file__).parent / "templates"
BUILTIN_TEMPLATES: tuple[str, ...] = tuple(sorted(p.stem for p in _DIR.glob("*.jinja")))


def builtin_template(name: str) -> str:
    """The Jinja source of a built-in template."""
    if name not in BUILTIN_TEMPLATES:
        raise SftlabError(
            f"unknown chat template '{name}'; use 'model', one of {', '.join(BUILTIN_TEMPLATES)}, or a .jinja file"
        )
    return (_DIR / f"{name}.jinja").read_text(encoding="utf-8")


def template_source(tokenizer, template: str = "model") -> str:
    """The Jinja source ``template`` names, without touching ``tokenizer``."""
    if template == "model":
        source = getattr(tokenizer, "chat_template", None)
        if isinstance(source, dict):  # several named templates: the default one trains
            source = source.get("default")
        if not source:
            raise SftlabError(
                "render.template is 'model' but the tokenizer has no chat template; "
                f"set render.template to one of {', '.join(BUILTIN_TEMPLATES)} or a .jinja file"
            )
        return source
    if template.endswith((".jinja", ".j2", ".jinja2")):
        path = Path(template)
        if not path.is_file():
            raise SftlabError(f"render.template: file '{template}' does not exist")
        return path.read_text(encoding="utf-8")
    return builtin_template(template)


_HEAD_OPEN, _HEAD_CLOSE = "{# sftlab render.template_kwargs #}", "{# /sftlab #}"
_HEAD = re.compile(re.escape(_HEAD_OPEN) + ".*?" + re.escape(_HEAD_CLOSE), re.S)


def jinja_literal(value: Any) -> str:
    """``value`` as a Jinja expression.

    >>> jinja_literal({"enable_thinking": False, "names": ["a", None], "n": 2})
    '{"enable_thinking": false, "names": ["a", none], "n": 2}'
    """
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jinja_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {jinja_literal(v)}" for k, v in value.items()) + "}"
    raise SftlabError(f"render.template_kwargs: {value!r} is not a JSON value")


def with_template_kwargs(source: str, template_kwargs: dict[str, Any] | None) -> str:
    """``source`` with ``template_kwargs`` set at its top (replacing any earlier sftlab header).

    Template-level ``set`` wins over a value passed to ``apply_chat_template``, so the saved template
    renders the same way whoever calls it.

    >>> with_template_kwargs("{{ enable_thinking }}", {"enable_thinking": False})
    '{# sftlab render.template_kwargs #}{%- set enable_thinking = false %}{# /sftlab #}{{ enable_thinking }}'
    """
    body = _HEAD.sub("", source, count=1) if source.startswith(_HEAD_OPEN) else source
    if not template_kwargs:
        return body
    sets = "".join(f"{{%- set {k} = {jinja_literal(v)} %}}" for k, v in template_kwargs.items())
    return _HEAD_OPEN + sets + _HEAD_CLOSE + body


def resolve_template(tokenizer, template: str = "model", template_kwargs: dict[str, Any] | None = None):
    """Set ``tokenizer.chat_template`` to the template ``template`` names and return the tokenizer.

    ``model`` keeps the tokenizer's own template (an error if it has none); ``template_kwargs``
    (``render.template_kwargs``) are written into it. The tokenizer is changed in place: save it
    with the run so inference uses the same template.
    """
    source = template_source(tokenizer, template)
    tokenizer.chat_template = with_template_kwargs(source, template_kwargs) if template_kwargs else source
    return tokenizer


def template_name(tokenizer, template: str = "model") -> str:
    """A short human name for messages: the built-in name, the file name, or the tokenizer's name."""
    if template != "model":
        return Path(template).name
    return f"{getattr(tokenizer, 'name_or_path', '') or 'tokenizer'} (model template)"
