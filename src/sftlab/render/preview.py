"""The mask preview: which tokens are trained, per source, and the checks that catch silent SFT bugs.

For each source it reports the share of trained tokens, records with nothing
trained, whether an end-of-turn token is trained after every assistant turn,
whether the inference prompt is a token prefix of the training rendering, whether
the thinking mode at training is the one inference uses, truncation counts, and how
many records the template made rewrite into one sample per turn; it also shows a
few records with the trained tokens marked. Failed checks (``problems``) fail the
preview; ``warnings`` (unfilled ``{{ variables }}`` in trained text, empty think
blocks, reasoning the template drops) are shown but do not.
"""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from sftlab.data.record import Conversation
from sftlab.recipe.sections.render import RenderSection
from sftlab.render.checks import (
    carries_reasoning,
    eot_ok,
    prompt_is_prefix,
    reasoning_rendered,
    special_ids,
    substitute_fix,
    template_variables,
    tools_rendered,
    trained_text,
)
from sftlab.render.errors import EmptyLabelsError, RenderError, TooLongError
from sftlab.render.labels import IGNORE_INDEX
from sftlab.render.reasoning import thinking_off
from sftlab.render.sample import ConversationSamples, RenderedSample, render_conversation, render_record

_MAX_IDS = 20


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


_COUNTED = (
    "no_trained_tokens",
    "eot_missing",
    "prompt_not_prefix",
    "tools_dropped",
    "thinking_mismatch",
    "template_variables",
    "empty_think",
    "reasoning_dropped",
)


def _new_source() -> dict[str, Any]:
    stats: dict[str, Any] = {
        "records": 0,
        "rendered": 0,
        "samples": 0,
        "rendered_per_turn": 0,
        "untrained_turns": 0,
        "tokens": 0,
        "trained_tokens": 0,
        "dropped_too_long": 0,
        "truncated": 0,
        "errors": 0,
        "error_messages": [],
        "variable_names": [],
    }
    for key in _COUNTED:
        stats[key], stats[key + "_ids"] = 0, []
    return stats


def _note(stats: dict, key: str, record_id) -> None:
    stats[key] += 1
    if len(stats[key + "_ids"]) < _MAX_IDS:
        stats[key + "_ids"].append(record_id)


def _render(record, tokenizer, cfg) -> ConversationSamples:
    if isinstance(record, Conversation):
        return render_conversation(record, tokenizer, cfg)
    sample = render_record(record, tokenizer, cfg)
    return ConversationSamples([sample], [[]], [0], "text", len(sample))


def _check_conversation(
    stats, conv: Conversation, out: ConversationSamples, tokenizer, cfg, specials
) -> None:
    """Every per-record check of a rendered conversation, noted in ``stats``."""
    rid = conv.meta.id
    pairs = list(zip(out.samples, out.segments, out.message_counts, strict=True))
    if not all(eot_ok(s, segs, specials) for s, segs, _ in pairs):
        _note(stats, "eot_missing", rid)
    if any(
        not s.truncated and prompt_is_prefix(conv, tokenizer, cfg, s.input_ids, n) is False
        for s, _, n in pairs
    ):
        _note(stats, "prompt_not_prefix", rid)
    text = "\n".join(tokenizer.decode(s.input_ids) for s in out.samples)
    if not tools_rendered(conv, text):
        _note(stats, "tools_dropped", rid)
    if carries_reasoning(conv, cfg) and not reasoning_rendered(conv, text):
        _note(stats, "reasoning_dropped", rid)
    names = template_variables("\n".join(trained_text(tokenizer, s) for s in out.samples))
    if names:
        _note(stats, "template_variables", rid)
        stats["variable_names"] = list(dict.fromkeys(stats["variable_names"] + names))[:10]
    if out.empty_think:
        _note(stats, "empty_think", rid)


def preview_report(records, tokenizer, cfg: RenderSection | None = None, *, n: int = 5) -> dict[str, Any]:
    """Render ``records`` and check them; returns ``{"sources": {name: stats}, "samples": [...], "ok": bool}``.

    ``tokenizer.chat_template`` must already be the training template (:func:`resolve_template`).
    """
    cfg = cfg or RenderSection()
    specials = special_ids(tokenizer)
    no_thinking = thinking_off(tokenizer, cfg.template_kwargs)
    sources: dict[str, dict[str, Any]] = defaultdict(_new_source)
    shown: list[dict[str, Any]] = []
    for record in records:
        stats = sources[record.meta.source or "data"]
        stats["records"] += 1
        rid = record.meta.id
        mismatch = no_thinking and isinstance(record, Conversation) and carries_reasoning(record, cfg)
        if mismatch:  # inference will never see this reasoning: the failure has one cause, named here
            _note(stats, "thinking_mismatch", rid)
        try:
            out = _render(record, tokenizer, cfg)
        except EmptyLabelsError:
            _note(stats, "no_trained_tokens", rid)
            continue
        except TooLongError:
            stats["dropped_too_long"] += 1
            continue
        except RenderError as err:
            if not mismatch:
                stats["errors"] += 1
                if len(stats["error_messages"]) < _MAX_IDS:
                    stats["error_messages"].append(str(err))
            continue
        stats["rendered"] += 1
        stats["samples"] += len(out.samples)
        stats["rendered_per_turn"] += out.mode in ("per_turn", "last_turn")
        stats["untrained_turns"] += out.untrained_turns
        stats["tokens"] += sum(len(s) for s in out.samples)
        stats["trained_tokens"] += sum(s.num_trained for s in out.samples)
        stats["truncated"] += any(s.truncated for s in out.samples)
        if isinstance(record, Conversation):
            _check_conversation(stats, record, out, tokenizer, cfg, specials)
        for sample in out.samples[: max(0, n - len(shown))]:
            shown.append(_shown(record, sample, tokenizer, len(out.samples)))
    for stats in sources.values():
        stats["trained_token_share"] = stats["trained_tokens"] / stats["tokens"] if stats["tokens"] else 0.0
        stats["eot_trained"] = stats["eot_missing"] == 0
        stats["prompt_is_prefix"] = stats["prompt_not_prefix"] == 0
    ok = all(s[key] == 0 for s in sources.values() for key, _ in _CHECKS)
    return {
        "template": cfg.template,
        "template_kwargs": dict(cfg.template_kwargs),
        "thinking": "off" if no_thinking else "on",
        "history_rewrite": cfg.history_rewrite,
        "drop_empty_think": cfg.drop_empty_think,
        "max_length": cfg.max_length,
        "sources": dict(sources),
        "samples": shown,
        "ok": ok,
    }


def _shown(record, sample: RenderedSample, tokenizer, of: int) -> dict[str, Any]:
    return {
        "id": record.meta.id,
        "source": record.meta.source,
        "tokens": len(sample),
        "trained": sample.num_trained,
        "samples_of_record": of,
        "spans": [[text, trained] for text, trained in spans(tokenizer, sample)],
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
    (
        "thinking_mismatch",
        "records carry reasoning but inference runs with thinking off (the generation prompt closes an empty "
        "think block, e.g. render.template_kwargs enable_thinking: false): the model would be trained on "
        "reasoning it never produces; remove that setting, or set render.reasoning: drop",
    ),
)


def _warning_lines(name: str, s: dict[str, Any], cfg_hint: dict[str, Any]) -> list[str]:
    s = {**_new_source(), **s}  # a preview.json written before a warning existed lacks its keys
    lines = []
    ids = lambda key: ", ".join(map(str, s[key + "_ids"][:3]))  # noqa: E731
    if s["template_variables"]:
        names = s["variable_names"]
        shown = ", ".join("{{" + v + "}}" for v in names[:5])
        lines.append(
            f"{name}: {s['template_variables']} records train unfilled template variables {shown} "
            f"(e.g. {ids('template_variables')}); {substitute_fix(names)} for this source"
        )
    if s["empty_think"]:
        what = "not trained (render.drop_empty_think)" if cfg_hint["drop_empty_think"] else "trained"
        lines.append(
            f"{name}: {s['empty_think']} records have assistant turns the template opens with an empty think "
            f"block, {what} (e.g. {ids('empty_think')}): data without reasoning while inference thinks; "
            "for non-reasoning data set render.template_kwargs: {enable_thinking: false}"
        )
    if s["reasoning_dropped"]:
        lines.append(
            f"{name}: {s['reasoning_dropped']} records carry reasoning the chat template does not render "
            f"(e.g. {ids('reasoning_dropped')}); set render.reasoning: inline to train it as <think> text, "
            "or drop to silence this"
        )
    return lines


def problems(report: dict[str, Any]) -> list[str]:
    """One line per failed check, naming source, count and example ids."""
    lines = []
    for name, s in report["sources"].items():
        for key, what in _CHECKS:
            if s.get(key):  # .get: a preview.json written before a check existed lacks its key
                ids = s.get(key + "_ids") or s.get("error_messages", [])
                lines.append(f"{name}: {s[key]} {what} (e.g. {', '.join(map(str, ids[:3]))})")
    return lines


def warnings(report: dict[str, Any]) -> list[str]:
    """One line per warning (shown, not failing): unfilled template variables, empty think blocks,
    reasoning the template drops."""
    hint = {"drop_empty_think": report.get("drop_empty_think", True)}
    return [line for name, s in report["sources"].items() for line in _warning_lines(name, s, hint)]


def rendering_summary(report: dict[str, Any]) -> str:
    """How records became samples: ``"history_rewrite per_turn: 3 of 10 records rendered turn by turn, 14 samples"``."""
    sources = report["sources"].values()
    records = sum(s["rendered"] for s in sources)
    per_turn = sum(s["rendered_per_turn"] for s in sources)
    samples = sum(s["samples"] for s in sources)
    left = sum(s["untrained_turns"] for s in sources)
    return (
        f"history_rewrite {report['history_rewrite']}: {per_turn} of {records} records rendered turn by turn "
        f"(the template rewrites earlier turns), {samples} samples"
        + (f", {left} assistant turns not trained" if left else "")
        + f"; thinking {report['thinking']} at inference"
    )


def save_preview_html(report: dict[str, Any], path, title: str = "Mask preview"):
    """A self-contained HTML page: per-source table, problems, highlighted samples."""
    from sftlab.report.html import HtmlReport

    page = HtmlReport(title, f"template {report['template']} · max_length {report['max_length']}")
    page.text(rendering_summary(report))
    page.section("Sources").table(
        [
            {
                "source": name,
                "records": s["records"],
                "rendered": s["rendered"],
                "samples": s["samples"],
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
    for line in warnings(report):
        page.text(line, "warn")
    page.section("Samples").text("Highlighted tokens carry loss; the rest is context.")
    for sample in report["samples"]:
        page.heading(
            f"{sample['id'] or '(no id)'} · {sample['source'] or 'data'} · {sample['trained']}/{sample['tokens']} trained"
        )
        page.raw(spans_html(sample["spans"]))
    return page.save(path)
