"""Load a recipe: YAML → dotted overrides → validation, with every problem reported at once.

Each message names the file, the line (when the key is in the file), the key
path, what was found and what was expected; for a misspelled key it suggests
the nearest valid one:

    recipe.yaml:12: training.lrr: unknown key; did you mean 'lr'?
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sftlab.errors import RecipeError
from sftlab.recipe.schema import Recipe

Loc = tuple[str | int, ...]
MAX_VALUES = 100_000
"""A recipe whose aliases expand past this many values is refused before anything walks it (alias bombs)."""


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    """Read ``path`` (or start from defaults when ``None``), apply ``key.path=value`` overrides, validate."""
    source = str(path) if path is not None else "recipe"
    lines: dict[Loc, int] = {}
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError([f"file not found: {path}"], source=source)
        text = _read_text(path, source)
        node = _compose(text, source)
        data = (yaml.safe_load(text) or {}) if node is not None else {}
        if not isinstance(data, dict):
            raise RecipeError(
                [f"{source}: the top level must be a mapping of sections, got {type(data).__name__}"],
                source=source,
            )
        if node is not None:
            _collect_lines(node, (), lines)
    problems: list[str] = []
    override_locs: set[Loc] = set()
    for item in parse_overrides(overrides or [], problems):
        loc, value = item
        try:
            _set_path(data, loc, value)
            override_locs.add(loc)
        except (KeyError, IndexError, TypeError) as err:
            problems.append(f"override {'.'.join(map(str, loc))}: {err}")
    if problems:
        raise RecipeError(problems, source=source)
    return recipe_from_dict(data, source=source, lines=lines, override_locs=override_locs)


def _read_text(path: Path, source: str) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RecipeError([f"{source}: a binary file, not a YAML recipe"], source=source)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        hint = " (it looks like UTF-16)" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else ""
        raise RecipeError(
            [f"{source}: not UTF-8 text{hint} at byte {err.start}; save the recipe as UTF-8"], source=source
        ) from None


def _compose(text: str, source: str) -> yaml.Node | None:
    """The YAML node tree, refused when it repeats a key or its aliases expand past :data:`MAX_VALUES`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError([f"{source}{where}: invalid YAML: {reason}"], source=source) from None
    if node is None:
        return None
    size = _expanded_size(node, {})
    if size > MAX_VALUES:
        raise RecipeError(
            [f"{source}: YAML aliases expand to more than {MAX_VALUES:,} values; refusing (an alias bomb?)"],
            source=source,
        )
    duplicates: list[str] = []
    _find_duplicate_keys(node, (), duplicates, set())
    duplicates = [f"{source}:{d}" for d in duplicates]
    if duplicates:
        raise RecipeError(duplicates, source=source)
    return node


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Values the node stands for once every alias is expanded (memoised: linear in the file)."""
    key = id(node)
    if key not in memo:
        memo[key] = 1  # a cycle counts once; safe_load would refuse it anyway
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(_expanded_size(v, memo) for _, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(_expanded_size(v, memo) for v in node.value)
        else:
            total = 1
        memo[key] = min(total, MAX_VALUES + 1)
    return memo[key]


def _find_duplicate_keys(node: yaml.Node, loc: Loc, out: list[str], seen_nodes: set[int]) -> None:
    if id(node) in seen_nodes:  # an alias: its keys were checked where it was defined
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key == "<<":
                continue
            if key in first:
                path = ".".join(str(p) for p in (*loc, key))
                out.append(f"{line}: {path}: duplicate key (first at line {first[key]}); keep one")
            else:
                first[key] = line
            _find_duplicate_keys(value_node, (*loc, key), out, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _find_duplicate_keys(item, (*loc, i), out, seen_nodes)


def recipe_from_dict(
    data: dict[str, Any],
    *,
    source: str = "recipe",
    lines: dict[Loc, int] | None = None,
    override_locs: set[Loc] | None = None,
) -> Recipe:
    """Validate a plain dict as a :class:`Recipe`, raising :class:`RecipeError` with every problem."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(
            [_describe(e, source, lines or {}, override_locs or set()) for e in err.errors()], source=source
        ) from None


def parse_overrides(overrides: list[str], problems: list[str] | None = None) -> list[tuple[Loc, Any]]:
    """``["training.lr=2e-4", "data.sources.0.weight=2"]`` → ``[(("training","lr"), 0.0002), ...]``.

    Values are parsed as YAML, so ``true``, ``[a, b]`` and numbers keep their types.

    >>> parse_overrides(["training.lr=2e-4", "render.packing=false"])
    [(('training', 'lr'), 0.0002), (('render', 'packing'), False)]
    """
    out: list[tuple[Loc, Any]] = []
    sink = problems if problems is not None else []
    for raw in overrides:
        key, sep, text = raw.partition("=")
        if not sep or not key.strip():
            sink.append(f"override '{raw}': expected KEY.PATH=VALUE (for example training.lr=2e-4)")
            continue
        loc: Loc = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, str):
            value = _number_or_str(value)
        out.append((loc, value))
    if problems is None and sink:
        raise RecipeError(sink, source="overrides")
    return out


def _number_or_str(text: str) -> Any:
    # YAML 1.1 reads "2e-4" as a string; users mean a number.
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _set_path(data: Any, loc: Loc, value: Any) -> None:
    node = data
    for i, part in enumerate(loc[:-1]):
        nxt = loc[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list):
                raise TypeError(f"'{part}' indexes a list, but this value is not a list")
            if part >= len(node):
                raise IndexError(f"index {part} is out of range (the list has {len(node)} items)")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise TypeError(f"'{part}' is a key, but the parent is not a mapping")
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = loc[-1]
    if isinstance(last, int):
        if not isinstance(node, list):
            raise TypeError(f"'{last}' indexes a list, but this value is not a list")
        if last == len(node):
            node.append(value)
        elif last < len(node):
            node[last] = value
        else:
            raise IndexError(f"index {last} is out of range (the list has {len(node)} items)")
    else:
        if not isinstance(node, dict):
            raise TypeError(f"'{last}' is a key, but the parent is not a mapping")
        node[last] = value


def _collect_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*loc, key)] = key_node.start_mark.line + 1
            _collect_lines(value_node, (*loc, key), out)
            out[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _collect_lines(item, (*loc, i), out)


def _describe(error: dict[str, Any], source: str, lines: dict[Loc, int], override_locs: set[Loc]) -> str:
    loc_full: Loc = tuple(error["loc"])
    # pydantic adds the tag of a discriminated union to the path; the file has no such key.
    loc = _file_loc(loc_full)
    key = ".".join(str(p) for p in loc) or "(top level)"
    where = source
    override = next((o for o in override_locs if loc[: len(o)] == o), None)
    if override is not None:
        where = "override" if override == loc else f"override {'.'.join(map(str, override))}"
    else:
        line = _nearest_line(loc, lines)
        if line:
            where = f"{source}:{line}"
    if error["type"] == "extra_forbidden":
        valid = _valid_keys(loc_full[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        suggestion = (
            f"; did you mean '{hint[0]}'?" if hint else (f"; valid keys: {', '.join(valid)}" if valid else "")
        )
        return f"{where}: {key}: unknown key{suggestion}"
    found = error.get("input")
    found_text = "" if isinstance(found, dict | list) or found is None else f" (got {found!r})"
    return f"{where}: {key}: {error['msg']}{found_text}"


def _nearest_line(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _file_loc(loc: Loc) -> Loc:
    out: list[str | int] = []
    tp: Any = Recipe
    for part in loc:
        members = _unwrap(tp)
        if isinstance(members, list) and isinstance(part, str):
            tagged = next((m for m in members if _tag_of(m) == part), None)
            if tagged is not None:  # a discriminator tag pydantic put in the path
                tp = tagged
                continue
        out.append(part)
        tp = _child(tp, part)
    return tuple(out)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _child(tp: Any, part: str | int) -> Any:
    """The type found one step down ``tp`` along ``part`` (unwrapping Optional/list/dict/unions)."""
    tp = _unwrap(tp)
    if isinstance(tp, list):  # a union of models: pick the member named by the tag, if any
        if isinstance(part, str):
            for member in tp:
                if _tag_of(member) == part:
                    return member
                if part in member.model_fields:
                    return _unwrap(member.model_fields[part].annotation)
        return tp
    if _is_model(tp) and isinstance(part, str) and part in tp.model_fields:
        return _unwrap(tp.model_fields[part].annotation)
    origin = typing.get_origin(tp)
    if origin in (list, tuple) and isinstance(part, int):
        return _unwrap(typing.get_args(tp)[0])
    if origin is dict:
        return _unwrap(typing.get_args(tp)[1])
    return None


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [_unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
        models = [a for a in args if _is_model(a)]
        if len(args) == 1:
            return args[0]
        if models and len(models) == len([a for a in args if not isinstance(a, list)]):
            return models
        return models[0] if len(models) == 1 else args[0]
    return tp


def _tag_of(model: type[BaseModel]) -> str | None:
    for name in ("type", "kind", "step"):
        field = model.model_fields.get(name)
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            args = typing.get_args(field.annotation)
            if len(args) == 1:
                return str(args[0])
    return None


def _valid_keys(parent_loc: Loc) -> list[str]:
    tp: Any = Recipe
    for part in parent_loc:
        tp = _child(tp, part)
        if tp is None:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, list):
        return sorted({k for m in tp for k in m.model_fields})
    return list(tp.model_fields) if _is_model(tp) else []
