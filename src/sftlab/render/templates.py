"""Chat templates: the model's own, a built-in one, or a ``.jinja`` file.

Training must render with exactly the template used at inference, so the chosen
template is written into ``tokenizer.chat_template`` and every later step (render,
preview, generation, export) reads it from there.

>>> sorted(BUILTIN_TEMPLATES)
['alpaca', 'chatml', 'llama3', 'mistral', 'plain']
"""

from __future__ import annotations

from pathlib import Path

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


def resolve_template(tokenizer, template: str = "model"):
    """Set ``tokenizer.chat_template`` to the template ``template`` names and return the tokenizer.

    ``model`` keeps the tokenizer's own template (an error if it has none).
    The tokenizer is changed in place: save it with the run so inference uses the same template.
    """
    tokenizer.chat_template = template_source(tokenizer, template)
    return tokenizer


def template_name(tokenizer, template: str = "model") -> str:
    """A short human name for messages: the built-in name, the file name, or the tokenizer's name."""
    if template != "model":
        return Path(template).name
    return f"{getattr(tokenizer, 'name_or_path', '') or 'tokenizer'} (model template)"
