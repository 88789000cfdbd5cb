"""The mask preview: which tokens are trained, per source, and the checks that catch silent SFT bugs.

For each source it reports the share of trained tokens, records with nothing
trained, whether an end-of-turn token is trained after every assistant turn,
whether the inference prompt is a token prefix of the training rendering, and
truncation counts; it also shows a few records with the trained tokens marked.
"""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from sftlab.data.record import Conversation
from sftlab.recipe.sections.render import RenderSection
from sftlab.render.errors import EmptyLabelsError, RenderError, TooLongError
from sftlab.render.labels import IGNORE_INDEX
from sftlab.render.messages import to_messages
from sftlab.render.sample import RenderedSample, render_conversation, render_record

_MAX_IDS = 20


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids.update(
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)
    )
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _eot_ok(sample: RenderedSample, segments, specials: set[int]) -> bool:
    """Every trained assistant turn's last trained token is a special (stop) token."""
    for seg in segments:
        if seg.role != "assistant":
            continue
        trained = [t for t in range(seg.body, seg.end) if sample.labels[t] != IGNORE_INDEX]
        if trained and sample.input_ids[trained[-1]] not in specials:
            return False
    return True


def _prompt_is_prefix(conv: Conversation, tokenizer, cfg: RenderSection, ids: list[int]) -> bool | None:
    """Is render(conversation minus its final assistant turn, generation prompt) a token prefix of ``ids``?"""
    messages = to_messages(conv, cfg.reasoning)
    if not messages or messages[-1]["role"] != "assistant" or len(messages) < 2:
        return None
    text = tokenizer.apply_chat_template(
        messages[:-1], tools=conv.tools or None, tokenize=False, add_generation_prompt=True
    )
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[: len(prompt)] == prompt


def _tool_names(conv: Conversation) -> set[str]:
    """Function names the rendering must show: every tool call made, every tool schema offered."""
    names = {c.name for t in conv.turns for c in (t.tool_calls or [])}
    for tool in conv.tools or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(fn, dict) and fn.get("name"):
            names.add(str(fn["name"]))
    return names


def _tools_rendered(conv: Conversation, tokenizer, sample: RenderedSample) -> bool:
    """Does the training text name every tool called or offered? Templates without tool support drop them
    silently (an empty assistant turn gets trained instead of the call)."""
    names = _tool_names(conv)
    if not names:
        return True
    text = tokenizer.decode(sample.input_ids)
    return all(name in text for name in names)


def spans(tokenizer, sample: RenderedSample) -> list[tuple[str, bool]]:
    """The sample's text cut into runs of trained / untrained tokens, decoded run by run."""
    out: list[tuple[str, bool]] = []
    run: list[int] = []
    state = None
    for tok, lab in zip(sample.input_ids, sample.labels, strict=True):
        trained = lab != IGNORE_INDEX
        if state is not None and trained != state:
            out.append((tokenizer.decode(run), state))
            run = []
        run.append(tok)
        state = trained
    if run:
        out.append((tokenizer.decode(run), bool(state)))
    return out


def _new_source() -> dict[str, Any]:
    return {
        "records": 0,
        "rendered": 0,
        "tokens": 0,
        "trained_tokens": 0,
        "no_trained_tokens": 0,
        "no_trained_tokens_ids": [],
        "dropped_too_long": 0,
        "truncated": 0,
        "errors": 0,
        "error_messages": [],
        "eot_missing": 0,
        "eot_missing_ids": [],
        "prompt_not_prefix": 0,
        "prompt_not_prefix_ids": [],
        "tools_dropped": 0,
        "tools_dropped_ids": [],
    }


def _note(stats: dict, key: str, record_id) -> None:
    stats[key] += 1
    if len(stats[key + "_ids"]) < _MAX_IDS:
        stats[key + "_ids"].append(record_id)


def preview_report(records, tokenizer, cfg: RenderSection | None = None, *, n: int = 5) -> dict[str, Any]:
    """Render ``records`` and check them; returns ``{"sources": {name: stats}, "samples": [...], "ok": bool}``.

    ``tokenizer.chat_template`` must already be the training template (:func:`resolve_template`).
    """
    cfg = cfg or RenderSection()
    specials = _special_ids(tokenizer)
    sources: dict[str, dict[str, Any]] = defaultdict(_new_source)
    shown: list[dict[str, Any]] = []
    for record in records:
        stats = sources[record.meta.source or "data"]
        stats["records"] += 1
        rid = record.meta.id
        try:
            if isinstance(record, Conversation):
                sample, segments, _ = render_conversation(record, tokenizer, cfg)
            else:
                sample, segments = render_record(record, tokenizer, cfg), []
        except EmptyLabelsError:
            _note(stats, "no_trained_tokens", rid)
            continue
        except TooLongError:
            stats["dropped_too_long"] += 1
            continue
        except RenderError as err:
            stats["errors"] += 1
            if len(stats["error_messages"]) < _MAX_IDS:
                stats["error_messages"].append(str(err))
            continue
        stats["rendered"] += 1
        stats["tokens"] += len(sample)
        stats["trained_tokens"] += sample.num_trained
        stats["truncated"] += sample.truncated
        if segments and not _eot_ok(sample, segments, specials):
            _note(stats, "eot_missing", rid)
        full = isinstance(record, Conversation) and not sample.truncated
        if full and _prompt_is_prefix(record, tokenizer, cfg, sample.input_ids) is False:
            _note(stats, "prompt_not_prefix", rid)
        if isinstance(record, Conversation) and not _tools_rendered(record, tokenizer, sample):
            _note(stats, "tools_dropped", rid)
        if len(shown) < n:
            shown.append(
                {
                    "id": rid,
                    "source": record.meta.source,
                    "tokens": len(sample),
                    "trained": sample.num_trained,
                    "spans": [[text, trained] for text, trained in spans(tokenizer, sample)],
                }
            )
    for stats in sources.values():
        stats["trained_token_share"] = stats["trained_tokens"] / stats["tokens"] if stats["tokens"] else 0.0
        stats["eot_trained"] = stats["eot_missing"] == 0
        stats["prompt_is_prefix"] = stats["prompt_not_prefix"] == 0
    ok = all(
        s["errors"] == 0
        and s["no_trained_tokens"] == 0
        and s["eot_trained"]
        and s["prompt_is_prefix"]
        and s["tools_dropped"] == 0
        for s in sources.values()
    )
    return {
        "template": cfg.template,
        "max_length": cfg.max_length,
        "sources": dict(sources),
        "samples": shown,
        "ok": ok,
    }


def spans_html(sample_spans) -> str:
    """``<pre>`` markup with trained runs in ``<mark class="t">``."""
    parts = [
        f'<mark class="t">{html.escape(text)}</mark>' if trained else html.escape(text)
        for text, trained in sample_spans
    ]
    return "<pre>" + "".join(parts) + "</pre>"


def spans_rich(sample_spans):
    """A rich ``Text`` with trained runs highlighted in green and the prompt dimmed."""
    from rich.text import Text

    text = Text()
    for part, trained in sample_spans:
        text.append(part, style="black on green" if trained else "dim")
    return text


_CHECKS = (
    ("no_trained_tokens", "records with no trained token"),
    ("eot_missing", "records where an assistant turn does not end with a trained special end-of-turn token"),
    ("prompt_not_prefix", "records whose inference prompt is not a token prefix of the training rendering"),
    ("errors", "records the template cannot render"),
    (
        "tools_dropped",
        "records whose tool calls or tool schemas the chat template does not render "
        "(use a template with tool support, e.g. render.template: chatml)",
    ),
)


def problems(report: dict[str, Any]) -> list[str]:
    """One line per failed check, naming source, count and example ids."""
    lines = []
    for name, s in report["sources"].items():
        for key, what in _CHECKS:
            if s[key]:
                ids = s.get(key + "_ids") or s.get("error_messages", [])
                lines.append(f"{name}: {s[key]} {what} (e.g. {', '.join(map(str, ids[:3]))})")
    return lines


def save_preview_html(report: dict[str, Any], path, title: str = "Mask preview"):
    """A self-contained HTML page: per-source table, problems, highlighted samples."""
    from sftlab.report.html import HtmlReport

    page = HtmlReport(title, f"template {report['template']} · max_length {report['max_length']}")
    page.section("Sources").table(
        [
            {
                "source": name,
                "records": s["records"],
                "rendered": s["rendered"],
                "trained share": s["trained_token_share"],
                "no trained token": s["no_trained_tokens"],
                "EOS trained": "yes" if s["eot_trained"] else "NO",
                "prompt is prefix": "yes" if s["prompt_is_prefix"] else "NO",
                "truncated": s["truncated"],
                "dropped too long": s["dropped_too_long"],
                "errors": s["errors"],
            }
            for name, s in report["sources"].items()
        ]
    )
    found = problems(report)
    page.section("Checks")
    for line in found:
        page.text(line, "err")
    if not found:
        page.text("every check passed", "ok")
    page.section("Samples").text("Highlighted tokens carry loss; the rest is context.")
    for sample in report["samples"]:
        page.heading(
            f"{sample['id'] or '(no id)'} · {sample['source'] or 'data'} · {sample['trained']}/{sample['tokens']} trained"
        )
        page.raw(spans_html(sample["spans"]))
    return page.save(path)
