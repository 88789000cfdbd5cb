"""A small interpreter for the part of Go's ``text/template`` that Ollama Modelfile templates use.

It exists to check a generated ``TEMPLATE`` against the model's Jinja chat template
without Ollama: render both for the same conversations and compare the text. It follows
Go's rules for what it supports and refuses everything else (so a template that uses
more than this subset fails loudly instead of rendering differently):

* text, ``{{ pipeline }}`` with ``{{-``/``-}}`` trimming the whitespace next to it;
* ``if``/``else if``/``else``/``end``, ``range $i, $m := PIPE`` / ``range PIPE``;
* variables ``$x := PIPE`` (declared in the block) and ``$x = PIPE`` (assigns the variable where it was declared,
  so a value set inside ``range`` is seen by the next iteration and after the loop, as in Go 1.11+),
  ``$``, ``$x.Field``, ``.Field``, ``.``;
* string (``"..."``, with Go escapes) and integer constants, ``(...)`` sub-expressions;
* functions ``eq ne not and or len slice index`` (Go's builtins, with Go's truthiness) and Ollama's ``json``
  (Go's ``json.Marshal``: compact, map keys sorted, ``<``, ``>``, ``&`` escaped).

>>> render('{{- range .Messages }}[{{ .Role }}]{{ end }}', {"Messages": [{"Role": "user"}]})
'[user]'
>>> render('{{ if eq (len .Messages) 0 }}none{{ else }}some{{ end }}', {"Messages": []})
'none'
"""

from __future__ import annotations

import ast
import re
from typing import Any

from sftlab.errors import SftlabError

_ACTION = re.compile(r"\{\{(- )?(.*?)( -)?\}\}", re.S)
_TOKEN = re.compile(
    r'\s*("(?:[^"\\]|\\.)*"|\(|\)|:=|=|\$?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|\$(?:\.[A-Za-z_]\w*)*|\.(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?|-?\d+|,)'
)


class GoTemplateError(SftlabError):
    """The template uses something outside the supported subset, or is malformed."""


def render(template: str, data: dict[str, Any]) -> str:
    """Execute ``template`` with ``data`` as dot (``.``) and ``$``."""
    nodes, rest = _parse(_Cursor(_lex(template)), ())
    if rest is not None:
        raise GoTemplateError(f"unexpected {{{{ {rest} }}}}")
    out: list[str] = []
    _run(nodes, data, {"$": _Var(data)}, out)
    return "".join(out)


def _lex(template: str) -> list[tuple[str, str]]:
    """``("text", s)`` and ``("action", s)`` pieces, with Go's whitespace trimming applied."""
    pieces: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if text:
            pieces.append(("text", text))
        body = m.group(2).strip()
        if not body.startswith("/*"):
            pieces.append(("action", body))
        trim_next, pos = bool(m.group(3)), m.end()
    tail = template[pos:]
    if trim_next:
        tail = tail.lstrip(" \t\r\n")
    if "{{" in tail:
        raise GoTemplateError("an unclosed '{{' in the template")
    if tail:
        pieces.append(("text", tail))
    return pieces


class _Cursor:
    """The lexed pieces and the position the parser has reached."""

    def __init__(self, pieces):
        self.pieces, self.i = pieces, 0


def _parse(state: _Cursor, stops: tuple[str, ...]):
    """Nodes up to one of ``stops`` (``end``, ``else``); returns ``(nodes, the stop action or None)``."""
    nodes: list[Any] = []
    while state.i < len(state.pieces):
        kind, body = state.pieces[state.i]
        state.i += 1
        if kind == "text":
            nodes.append(("text", body))
            continue
        word = body.split(None, 1)[0]
        if word in ("end", "else"):
            if word not in stops:
                raise GoTemplateError(f"unexpected {{{{ {body} }}}}")
            return nodes, body
        if word == "if":
            nodes.append(_parse_if(state, body[2:].strip()))
        elif word == "range":
            nodes.append(_parse_range(state, body[5:].strip()))
        elif word in ("with", "define", "template", "block", "break", "continue"):
            raise GoTemplateError(f"'{word}' is outside the supported template subset")
        else:
            nodes.append(("action", _tokens(body)))
    if stops:
        raise GoTemplateError("missing {{ end }}")
    return nodes, None


def _parse_if(state, condition: str):
    branches = []
    while True:
        body, stop = _parse(state, ("end", "else"))
        branches.append((_tokens(condition) if condition is not None else None, body))
        if stop == "end":
            return ("if", branches)
        rest = stop[4:].strip()
        if rest.startswith("if "):
            condition = rest[3:].strip()
        elif not rest:
            body, stop = _parse(state, ("end",))
            branches.append((None, body))
            return ("if", branches)
        else:
            raise GoTemplateError(f"unsupported {{{{ {stop} }}}}")


def _parse_range(state, header: str):
    names: list[str] = []
    m = re.match(r"(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.*)$", header, re.S)
    if m:
        names = [n for n in (m.group(1), m.group(2)) if n]
        header = m.group(3)
    body, stop = _parse(state, ("end", "else"))
    empty = []
    if stop != "end":
        empty, _ = _parse(state, ("end",))
    return ("range", names, _tokens(header), body, empty)


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise GoTemplateError(f"cannot read {expr[pos:]!r} in {{{{ {expr} }}}}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return out


def _run(nodes, dot, scope: dict, out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "action":
            toks = node[1]
            if len(toks) >= 2 and toks[0].startswith("$") and toks[1] == ":=":
                scope[toks[0]] = _Var(_eval(toks[2:], dot, scope))
            elif len(toks) >= 2 and toks[0].startswith("$") and toks[1] == "=":
                if toks[0] not in scope:
                    raise GoTemplateError(f"undefined variable {toks[0]}")
                scope[toks[0]].value = _eval(toks[2:], dot, scope)
            else:
                out.append(_print(_eval(toks, dot, scope)))
        elif kind == "if":
            for condition, body in node[1]:
                if condition is None or _truth(_eval(condition, dot, scope)):
                    _run(body, dot, dict(scope), out)
                    break
        elif kind == "range":
            _, names, header, body, empty = node
            items = _eval(header, dot, scope) or []
            if not items:
                _run(empty, dot, dict(scope), out)
            for index, item in enumerate(items):
                inner = dict(scope)
                if len(names) == 1:
                    inner[names[0]] = _Var(item)
                elif len(names) == 2:
                    inner[names[0]], inner[names[1]] = _Var(index), _Var(item)
                _run(body, item, inner, out)


def _print(value) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _truth(value) -> bool:
    return bool(value)  # Go: false, 0, nil, empty string/slice/map are false, as in Python


def _eval(toks: list[str], dot, scope: dict):
    """A pipeline without ``|``: a function call with arguments, or a single operand."""
    args, pos = [], 0
    while pos < len(toks):
        value, pos = _operand(toks, pos, dot, scope)
        args.append(value)
    if not args:
        raise GoTemplateError("empty command")
    head = args[0]
    if isinstance(head, _Func):
        return head(args[1:])
    if len(args) > 1:
        raise GoTemplateError(f"can't give arguments to a non-function: {' '.join(toks)}")
    return head


def _operand(toks: list[str], pos: int, dot, scope: dict):
    tok = toks[pos]
    if tok == "(":
        depth, end = 1, pos + 1
        while depth:
            if end >= len(toks):
                raise GoTemplateError("unclosed '('")
            depth += {"(": 1, ")": -1}.get(toks[end], 0)
            end += 1
        return _eval(toks[pos + 1 : end - 1], dot, scope), end
    if tok.startswith('"'):
        return ast.literal_eval(tok), pos + 1
    if re.fullmatch(r"-?\d+", tok):
        return int(tok), pos + 1
    if tok in _FUNCS:
        return _Func(tok), pos + 1
    if tok in ("true", "false"):
        return tok == "true", pos + 1
    if tok.startswith("$"):
        name, _, path = tok.partition(".")
        if name not in scope:
            raise GoTemplateError(f"undefined variable {name}")
        return _field(scope[name].value, path), pos + 1
    if tok.startswith("."):
        return _field(dot, tok[1:]), pos + 1
    raise GoTemplateError(f"function {tok!r} is not defined in the supported subset")


def _field(value, path: str):
    for name in filter(None, path.split(".")):
        if not isinstance(value, dict):
            raise GoTemplateError(f"can't evaluate field {name} in a {type(value).__name__}")
        value = value.get(name)
    return value


class _Var:
    """A template variable: blocks copy the name table, so ``=`` in a block reaches the variable outside."""

    def __init__(self, value):
        self.value = value


class _Func(str):
    def __call__(self, args: list):
        return _FUNCS[self](*args)


def _eq(a, *others):
    return any(a == b for b in others)


_FUNCS = {
    "eq": _eq,
    "ne": lambda a, b: a != b,
    "not": lambda a: not _truth(a),
    "and": lambda *xs: next((x for x in xs if not _truth(x)), xs[-1]),
    "or": lambda *xs: next((x for x in xs if _truth(x)), xs[-1]),
    "len": lambda x: len(x),
    "slice": lambda x, *ij: x[ij[0] : ij[1] if len(ij) > 1 else None] if ij else x,
    "index": lambda x, *keys: _index(x, keys),
    "json": lambda x: go_json(x),
}


def go_json(value) -> str:
    """What Go's ``json.Marshal`` writes for ``value`` (maps from JSON data: keys sorted), as Ollama's ``json``.

    >>> print(go_json({"b": [1, "<x>"], "a": "é"}))
    {"a":"é","b":[1,"\\u003cx\\u003e"]}
    """
    import json

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for char, code in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, code)
    return text


def _index(value, keys):
    for key in keys:
        value = value[key]
    return value
