"""The recipe reference (``docs/recipe.md``): every key of :class:`sftlab.recipe.schema.Recipe`.

Walks the pydantic models: each key's dotted path, type, default and meaning,
taken from the attribute docstrings.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sftlab.docs.markdown import HEADER, code, join_text, md_text, slug, table, union_args, unwrap_annotated


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_name(tp: Any) -> str:
    """A short, YAML-minded name for an annotation: ``int``, ``"a" | "b"``, ``list[str]``, ``section``."""
    tp = unwrap_annotated(tp)
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    args = union_args(tp)
    if args is not None:
        return " | ".join(_type_name(a) for a in args)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (list, tuple, set, frozenset):
        inner = typing.get_args(tp)
        member = unwrap_annotated(inner[0]) if inner else Any
        members = union_args(member)
        if _is_section(member) or (members and all(_is_section(m) for m in members)):
            return "list of sections"
        return f"list[{', '.join(_type_name(a) for a in inner if a is not Ellipsis)}]"
    if origin is dict:
        key, value = typing.get_args(tp) or (Any, Any)
        return f"dict[{_type_name(key)}, {_type_name(value)}]"
    if _is_section(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def _constraints(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for attr, symbol in _BOUNDS:
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "*required*"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return ""
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "*(section)*"
    return code(json.dumps(value, ensure_ascii=False, default=str))


def _own_doc(cls: type) -> str:
    """A class's own docstring (not one inherited from a base class)."""
    return md_text(cls.__dict__.get("__doc__"))


def _module_summary(cls: type) -> str:
    """First paragraph of the defining module's docstring, minus a leading ````key:```` —."""
    doc = inspect.getdoc(sys.modules.get(cls.__module__)) or ""
    first = doc.split("\n\n")[0]
    first = re.sub(r"^``[\w.]+:``\s*[—-]\s*", "", first.strip())
    text = md_text(first)
    return text[:1].upper() + text[1:]


@dataclass
class FieldRow:
    """One documented key."""

    path: str
    name: str
    type: str
    default: str
    meaning: str


@dataclass
class SectionTable:
    """One table of the recipe reference: a section (or one curation step type)."""

    path: str
    model: type[BaseModel]
    title: str
    summary: str
    rows: list[FieldRow] = field(default_factory=list)
    depth: int = 0


def _section_targets(tp: Any) -> tuple[str, list[type[BaseModel]]] | None:
    """Sections nested under a field: ``("one", [M])``, ``("list", [M])`` or ``("union", [A, B…])``."""
    tp = unwrap_annotated(tp)
    args = union_args(tp)
    if args is not None:
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:
            return _section_targets(non_null[0])
        return None
    if _is_section(tp):
        return ("one", [tp])
    if typing.get_origin(tp) is list:
        (member,) = typing.get_args(tp) or (Any,)
        member = unwrap_annotated(member)
        if _is_section(member):
            return ("list", [member])
        members = union_args(member)
        if members and all(_is_section(m) for m in members):
            return ("union", list(members))
    return None


def _step_tag(model: type[BaseModel]) -> str:
    info = model.model_fields.get("type")
    if info is not None and isinstance(info.default, str):
        return info.default
    return model.__name__


def _walk(
    model: type[BaseModel], path: str, title: str, summary: str, depth: int, out: list[SectionTable]
) -> None:
    table = SectionTable(path=path, model=model, title=title, summary=summary, depth=depth)
    out.append(table)
    children: list[tuple[type[BaseModel], str, str, str]] = []
    names = list(model.model_fields)
    if "type" in names:  # a step's ``type`` picks its table: list it first
        names.remove("type")
        names.insert(0, "type")
    for name in names:
        info = model.model_fields[name]
        key_path = f"{path}.{name}" if path else name
        meaning = md_text(info.description)
        type_name = _type_name(info.annotation)
        bounds = _constraints(info)
        if bounds:
            type_name = f"{type_name} ({bounds})"
        target = _section_targets(info.annotation)
        if target is not None:
            kind, models = target
            if kind == "union":
                links = []
                for m in models:
                    tag = _step_tag(m)
                    child_title = f"`{key_path}[]` — `type: {tag}`"
                    links.append(f"[`{tag}`](#{slug(child_title)})")
                    children.append((m, f"{key_path}[]", child_title, _own_doc(m)))
                meaning = join_text(meaning, "Step types: " + ", ".join(links) + ".")
            else:
                (m,) = models
                child_path = f"{key_path}[]" if kind == "list" else key_path
                # a table under a step type says which one: ``curation.steps[].judge`` (``type: score``)
                step = f" (`type: {_step_tag(model)}`)" if "type" in model.model_fields else ""
                child_title = f"`{child_path}`{step}"
                child_summary = _own_doc(m) or (_module_summary(m) if not path else "")
                meaning = join_text(meaning or child_summary, f"See [`{child_path}`](#{slug(child_title)}).")
                children.append((m, child_path, child_title, child_summary))
        elif name == "type" and typing.get_origin(unwrap_annotated(info.annotation)) is Literal:
            meaning = meaning or "Step type; selects the fields in this table."
        table.rows.append(FieldRow(key_path, name, type_name, _default(info), meaning))
    for m, child_path, child_title, child_summary in children:
        _walk(m, child_path, child_title, child_summary, depth + 1, out)


def recipe_tables() -> list[SectionTable]:
    """Every table of the recipe reference, depth-first in field order."""
    from sftlab.recipe.schema import Recipe

    out: list[SectionTable] = []
    _walk(Recipe, "", "Top-level keys", _own_doc(Recipe), 0, out)
    return out


def recipe_reference_markdown() -> str:
    """The recipe reference (``docs/recipe.md``) as Markdown."""
    tables = recipe_tables()
    lines = [
        HEADER,
        "",
        "# Recipe reference",
        "",
        "A recipe is one YAML file describing a whole run. Every key is optional unless marked "
        "*required*; unknown keys are errors. Keys are written here as dotted paths "
        "(`training.lora.r` is `r:` under `lora:` under `training:`); `[]` marks a list item. "
        "Any key can be overridden on the command line, e.g. `sftlab train recipe.yaml training.lr=1e-4`.",
        "",
        "## Contents",
        "",
    ]
    for t in tables:
        if t.depth <= 1:
            lines.append(f"{'  ' * t.depth}- [{t.title}](#{slug(t.title)})")
    lines.append("")
    for t in tables:
        level = "#" * min(2 + max(t.depth - 1, 0), 4)
        lines += [f"{level} {t.title}", ""]
        if t.summary:
            lines += [t.summary, ""]
        lines += table(
            ["Key", "Type", "Default", "Meaning"],
            [[f"`{r.path}`", code(r.type), r.default, r.meaning] for r in t.rows],
        )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ── CLI reference ─────────────────────────────────────────────────────────
#
# Duck-typed on purpose: typer ships its own copy of click (``typer._click``), so
# ``isinstance(x, click.Group)`` is false for typer's commands.
