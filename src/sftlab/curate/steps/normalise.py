"""``normalize``: repair and unify text so that filters and dedup compare like with like.

Each edit kind (``unicode_repair``, ``unicode_form``, ``html``, ``whitespace``,
``punctuation``, ``json``) is recorded in ``meta.provenance["curation_edits"]``.
Code fences are never touched except for JSON formatting.

>>> repair_mojibake("cafÃ© and naÃ¯ve")
'café and naïve'
>>> strip_html("<b>Tom</b> &amp; Jerry")
'Tom & Jerry'
>>> unify_punctuation("你好,世界!Hi，there", "fullwidth_for_cjk")
'你好，世界！Hi,there'
>>> canonical_json('Here:\\n{"a": 1,\\n "b": [1, 2]}', "compact", "fenced")
'Here:\\n```json\\n{"a":1,"b":[1,2]}\\n```'
"""

from __future__ import annotations

import html
import json
import re
import unicodedata

from sftlab.curate.steps.base import Decision, RecordStep
from sftlab.curate.steps.text import is_cjk
from sftlab.data.record import Conversation, Record
from sftlab.recipe.sections.curation import NormalizeConfig

_FENCE = re.compile(r"(```[^\n]*\n.*?```)", re.DOTALL)

# ── mojibake ──────────────────────────────────────────────────────────────
# Characters that UTF-8 bytes turn into when decoded as cp1252/latin-1.
_CP1252_EXTRA = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_MOJI_RUN = re.compile(
    f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_EXTRA}]+(?:[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_EXTRA}]+)*"
)


def _to_byte(ch: str) -> int | None:
    try:
        return ch.encode("cp1252")[0]
    except UnicodeEncodeError:
        return ord(ch) if ord(ch) < 256 else None


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as cp1252/latin-1, run by run; a run is changed only if it is valid UTF-8."""

    def fix(match: re.Match) -> str:
        run = match.group(0)
        raw = [_to_byte(c) for c in run]
        if None in raw:
            return run
        try:
            return bytes(raw).decode("utf-8")  # type: ignore[arg-type]
        except UnicodeDecodeError:
            return run

    return _MOJI_RUN.sub(fix, text)


# ── html ──────────────────────────────────────────────────────────────────
_TAGS = (
    "a|abbr|article|aside|b|big|blockquote|body|br|button|caption|center|cite|code|col|dd|del|div|dl|dt|em|"
    "font|footer|form|h[1-6]|head|header|hr|html|i|img|input|ins|kbd|label|li|link|main|mark|meta|nav|ol|p|"
    "pre|q|s|section|small|span|strike|strong|sub|sup|table|tbody|td|tfoot|th|thead|title|tr|tt|u|ul"
)
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCK = re.compile(r"<\s*(br|/p|/div|/li|/h[1-6]|/tr|/blockquote|hr)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(rf"</?\s*(?:{_TAGS})\b[^<>]*>", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#\d{2,6}|#x[0-9a-fA-F]{2,6});")


def strip_html(text: str) -> str:
    """Remove known HTML tags (``<PLACEHOLDER>``-like words are not tags) and unescape entities."""
    if "<" not in text and "&" not in text:
        return text
    text = _SCRIPT.sub("", text)
    text = _BLOCK.sub("\n", text)
    text = _TAG.sub("", text)
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


# ── whitespace ────────────────────────────────────────────────────────────
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_INNER_SPACE = re.compile(r"(?<=\S)[ \t\u00a0\u3000]{2,}|(?<=\S)[\t\u00a0]")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")


def clean_whitespace(text: str) -> str:
    r"""Drop invisible characters, collapse runs of spaces inside lines (indentation kept), trim, at most one blank line.

    Code fences keep their whitespace.

    >>> clean_whitespace("a   b  \n\n\n\n```\nx  =  1\n```  ")
    'a b\n\n```\nx  =  1\n```'
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parts = _FENCE.split(text) if "```" in text else [text]
    for i in range(0, len(parts), 2):
        part = _INVISIBLE.sub("", parts[i])
        part = _INNER_SPACE.sub(" ", part)
        part = _TRAILING.sub("", part)
        parts[i] = _BLANKS.sub("\n\n", part)
    return "".join(parts).strip()


# ── punctuation ───────────────────────────────────────────────────────────
_HALF_OF = {"，": ",", "。": ".", "！": "!", "？": "?", "：": ":", "；": ";", "（": "(", "）": ")", "、": ","}
_HALF_OF.update({"【": "[", "】": "]", "“": '"', "”": '"', "‘": "'", "’": "'", "～": "~"})
_FULL_OF = {",": "，", ".": "。", "!": "！", "?": "？", ":": "：", ";": "；", "(": "（", ")": "）"}
_PUNCT = re.compile("[，。！？：；（）、【】“”‘’～,.!?:;()\uff01-\uff5e]")


def _halfwidth(ch: str) -> str:
    if ch in _HALF_OF:
        return _HALF_OF[ch]
    if "\uff01" <= ch <= "\uff5e":  # full-width ASCII block
        return chr(ord(ch) - 0xFEE0)
    return ch


def _near_cjk(text: str, i: int) -> bool:
    prev = text[i - 1] if i > 0 else ""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    return (prev != "" and is_cjk(prev)) or (nxt != "" and is_cjk(nxt) and text[i] in "(（")


def unify_punctuation(text: str, mode: str) -> str:
    """``halfwidth``: full-width punctuation → ASCII. ``fullwidth_for_cjk``: full-width after CJK, ASCII elsewhere."""
    if mode == "none":
        return text

    def fix(match: re.Match) -> str:
        ch, i = match.group(0), match.start()
        half = _halfwidth(ch)
        if mode == "halfwidth":
            return half
        if _near_cjk(text, i) and half in _FULL_OF:
            # "3.5" after a CJK word is still a number: keep a dot that precedes a digit.
            if half == "." and i + 1 < len(text) and text[i + 1].isdigit():
                return ch
            return _FULL_OF[half]
        return half if ch in _HALF_OF or "\uff01" <= ch <= "\uff5e" else ch

    return _PUNCT.sub(fix, text)


# ── JSON in answers ───────────────────────────────────────────────────────
_JSON_FENCE = re.compile(r"```(json|JSON)?[ \t]*\n(.*?)\n?```", re.DOTALL)
_JSON_START = re.compile(r"(?m)^[ \t]*[\[{]")
_DECODER = json.JSONDecoder()


def _dump(obj: object, style: str) -> str:
    if style == "indent":
        return json.dumps(obj, ensure_ascii=False, indent=2)
    if style == "line":
        return json.dumps(obj, ensure_ascii=False)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _parse_json(text: str) -> object | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict | list) and obj else None


def canonical_json(text: str, style: str, fence: str) -> str:
    """Re-serialise every JSON object/array (fenced, or bare at a line start) in one style and fencing."""
    if "{" not in text and "[" not in text:
        return text
    out: list[str] = []
    pos = 0
    for m in _JSON_FENCE.finditer(text):
        out.append(_bare_json(text[pos : m.start()], style, fence))
        obj = _parse_json(m.group(2))
        if obj is None:
            out.append(m.group(0))  # a code fence that is not JSON: leave it
        else:
            body = _dump(obj, style) if style != "keep" else m.group(2).strip("\n")
            out.append(body if fence == "bare" else f"```json\n{body}\n```")
        pos = m.end()
    out.append(_bare_json(text[pos:], style, fence))
    return "".join(out)


def _bare_json(text: str, style: str, fence: str) -> str:
    out: list[str] = []
    pos = 0
    while True:
        m = _JSON_START.search(text, pos)
        if m is None:
            break
        start = m.end() - 1
        try:
            obj, end = _DECODER.raw_decode(text, start)
        except ValueError:
            out.append(text[pos : m.end()])
            pos = m.end()
            continue
        if not (isinstance(obj, dict | list) and obj):
            out.append(text[pos:end])
            pos = end
            continue
        body = _dump(obj, style) if style != "keep" else text[start:end]
        out.append(text[pos:start])
        out.append(f"```json\n{body}\n```" if fence == "fenced" else body)
        pos = end
    out.append(text[pos:])
    return "".join(out)


# ── the step ──────────────────────────────────────────────────────────────


class NormalizeStep(RecordStep):
    """Edits text in place; never removes a record."""

    def __init__(self, cfg: NormalizeConfig | None = None):
        cfg = cfg or NormalizeConfig()
        super().__init__(cfg.action)
        self.cfg = cfg

    def _prose(self, text: str, edits: set[str]) -> str:
        """Prose edits, applied outside code fences."""
        if "```" not in text:
            return self._prose_part(text, edits)
        parts = _FENCE.split(text)
        for i in range(0, len(parts), 2):  # even parts are outside fences
            parts[i] = self._prose_part(parts[i], edits)
        return "".join(parts)

    def _prose_part(self, text: str, edits: set[str]) -> str:
        cfg = self.cfg
        ascii_only = text.isascii()  # nothing to repair, normalise or unify in plain ASCII
        for kind, enabled, fn in (
            ("unicode_repair", cfg.unicode_repair and not ascii_only, repair_mojibake),
            ("html", cfg.strip_html, strip_html),
            (
                "unicode_form",
                cfg.unicode_form != "none" and not ascii_only,
                lambda t: unicodedata.normalize(cfg.unicode_form, t),
            ),
            ("punctuation", cfg.punctuation != "none", lambda t: unify_punctuation(t, cfg.punctuation)),
        ):
            if enabled:
                new = fn(text)
                if new != text:
                    edits.add(kind)
                    text = new
        return text

    def normalise_text(self, text: str, edits: set[str], *, answer: bool = False) -> str:
        new = self._prose(text, edits)
        if self.cfg.whitespace:
            cleaned = clean_whitespace(new)
            if cleaned != new:
                edits.add("whitespace")
            new = cleaned
        if answer and (self.cfg.json_style != "keep" or self.cfg.json_fence != "keep"):
            formatted = canonical_json(new, self.cfg.json_style, self.cfg.json_fence)
            if formatted != new:
                edits.add("json")
            new = formatted
        return new

    def process(self, record: Record) -> Decision:
        edits: set[str] = set()
        if isinstance(record, Conversation):
            if record.system:
                record.system = self.normalise_text(record.system, edits)
            for turn in record.turns:
                turn.content = self.normalise_text(turn.content, edits, answer=turn.role == "assistant")
                if turn.reasoning:
                    turn.reasoning = self.normalise_text(turn.reasoning, edits)
        else:
            record.text = self.normalise_text(record.text, edits)
        if edits:
            done = record.meta.provenance.setdefault("curation_edits", [])
            done.extend(sorted(e for e in edits if e not in done))
        return Decision(record, edited=bool(edits))
