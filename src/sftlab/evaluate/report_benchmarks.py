"""Report sections with uncertainty in them: benchmarks and the retention gate, latency, the checkpoint sweep."""

from __future__ import annotations

from typing import Any

from sftlab.evaluate.report import NA, plt
from sftlab.report.html import HtmlReport


def _pct(x: float | None) -> str:
    return NA if x is None else f"{x:.1%}"


def _ci(pair: list[float] | tuple[float, float] | None, fmt: str = "{:.1%}") -> str:
    return NA if not pair or pair[0] != pair[0] else f"{fmt.format(pair[0])} to {fmt.format(pair[1])}"


def benchmarks(page: HtmlReport, report: dict[str, Any]) -> None:
    """Accuracy with its 95% interval and chance level per benchmark, then the paired gate, then the loss shift."""
    base = report["models"][report["base"]].get("benchmarks") or {}
    loss_rows = _general_loss_rows(report)
    na_rows = _not_measured_rows(report)
    if not base and not loss_rows and not na_rows:
        return
    page.section("Benchmarks and retention")
    rows = [
        {
            "model": label,
            "benchmark": name,
            "accuracy": _pct(b["accuracy"]),
            "95% CI": _ci(b.get("ci95")),
            "chance": _pct(b.get("chance")),
            "n": b["n"],
            "vs base": "—"
            if label == report["base"]
            else (f"{(b['accuracy'] - base[name]['accuracy']) * 100:+.1f} pts" if name in base else NA),
        }
        for label, r in report["models"].items()
        for name, b in (r.get("benchmarks") or {}).items()
    ]
    page.table(rows + [{"model": r["model"], "benchmark": r["what"], "accuracy": NA} for r in na_rows
                       if r["what"] not in ("loss", "general_loss")])  # fmt: skip
    if na_rows:
        page.heading("Not measured (n/a), and why")
        page.table(na_rows)
    gate = [
        {
            "model": label,
            "benchmark": v["benchmark"],
            "drop": f"{v['drop'] * 100:+.1f} pts",
            "drop 95% CI": _ci(v["drop_ci95"]),
            "answers lost / gained": f"{v['losses']} / {v['gains']}",
            "p (one-sided)": f"{v['p_value']:.2g}",
            "detectable drop": _pct(v["detectable_drop"]),
            "threshold": _pct(v["threshold"]),
            "status": v["status"],
        }
        for label, v in report["retention"].items()
    ]
    if gate:
        page.heading("Retention gate: the same questions, base against each model")
        page.table(gate)
        page.text(
            "Exact McNemar test on the answers that changed. 'detectable drop': the smallest drop this set "
            "catches with 80% power given how many answers moved; when it exceeds the threshold the set "
            "cannot tell, and the status says 'too small' instead of 'pass'.",
            "note",
        )
    if loss_rows:
        page.heading("Loss on held-out general instructions (token mean)")
        page.table(loss_rows)
    _subjects(page, report, base)


def _not_measured_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """What a model (an endpoint) could not be measured on, with the reason: n/a, never a 0 or a gap."""
    return [
        {"model": label, "what": what, "reason": why}
        for label, r in report["models"].items()
        for what, why in (r.get("not_measured") or {}).items()
    ]


def _general_loss_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, r in report["models"].items():
        g = r.get("general_loss")
        if not g:
            continue
        shift = g.get("shift") or {}
        rows.append(
            {
                "model": label,
                "loss": g["token_mean"],
                "95% CI": _ci(g.get("ci95"), "{:.3f}"),
                "records / tokens": f"{g['records']} / {g['tokens']}",
                "shift vs base": f"{shift['shift']:+.3f}" if shift else NA,
                "shift 95% CI": _ci(shift.get("ci95"), "{:+.3f}") if shift else NA,
                "reading": shift.get("verdict", "base" if label == report["base"] else NA),
            }
        )
    return rows


def _subjects(page: HtmlReport, report: dict[str, Any], base: dict[str, Any]) -> None:
    """Subjects that moved most (only for sets with several subjects, e.g. MMLU)."""
    for name, b in base.items():
        if len(b["per_subject"]) < 2:
            continue
        others = [(label, r["benchmarks"][name]) for label, r in report["models"].items()
                  if label != report["base"] and name in (r.get("benchmarks") or {})]  # fmt: skip
        if not others:
            continue
        label, tuned = others[0]
        deltas = sorted(
            (
                {
                    "subject": s,
                    "base": a,
                    label: tuned["per_subject"].get(s),
                    "delta": tuned["per_subject"].get(s, 0) - a,
                }
                for s, a in b["per_subject"].items()
            ),
            key=lambda d: d["delta"],
        )
        page.heading(f"{name}: subjects that moved most ({label} vs base; a few questions each, so noisy)")
        page.table(deltas[:8] + deltas[-4:] if len(deltas) > 12 else deltas)


def latency(page: HtmlReport, report: dict[str, Any]) -> None:
    """The fit with R² (3+ points only), decode speed with its spread across repeats, TTFT per prompt length."""
    every = [(label, r["latency"]) for label, r in report["models"].items() if r.get("latency")]
    lat = [(label, x) for label, x in every if x.get("kind") != "streamed"]
    streamed = [(label, x) for label, x in every if x.get("kind") == "streamed"]
    if not every:
        return
    page.section("Latency")
    if streamed:
        _streamed(page, streamed)
    if not lat:
        return
    rows = []
    for label, x in lat:
        lo, hi = x["tokens_per_s_range"]
        ttft = x["ttft"]
        rows.append(
            {
                "model": label,
                "ms / token (k)": x["k_s_per_token"] * 1e3,
                "b ≈ set-up (ms)": x["b_s"] * 1e3,
                "R²": NA if x["r2"] is None else x["r2"],
                "tokens/s": x["tokens_per_s"],
                "tokens/s over repeats": f"{lo:.1f} to {hi:.1f}",
                "TTFT (ms), shortest / longest prompt": " / ".join(
                    f"{p['median_s'] * 1e3:.0f} ({p['min_s'] * 1e3:.0f}-{p['max_s'] * 1e3:.0f})"
                    for p in (ttft[0], ttft[-1])
                )
                if ttft
                else NA,
                "repeats": x["repeats"],
                "interleaved": "yes" if x.get("interleaved") else "no",
                "threads / cores, load": _machine(x.get("machine") or {}),
            }
        )
    page.table(rows)
    for label, x in lat:
        for warning in x.get("warnings", []):
            page.text(f"{label}: {warning}", "note")
    _latency_plot(page, lat)


def _streamed(page: HtmlReport, streamed: list[tuple[str, dict[str, Any]]]) -> None:
    """Endpoints: TTFT and time per token from streamed answers to eval prompts (median, quartiles, range)."""

    def ms(s: dict[str, Any] | None) -> str:
        if not s:
            return NA
        return f"{s['median_s'] * 1e3:.1f} (IQR {s['q1_s'] * 1e3:.1f}-{s['q3_s'] * 1e3:.1f}, range " \
               f"{s['min_s'] * 1e3:.1f}-{s['max_s'] * 1e3:.1f})"  # fmt: skip

    page.heading("Endpoints: streamed answers to eval prompts")
    page.table(
        [
            {
                "model": label,
                "TTFT ms, median": ms(x["ttft"]),
                "ms / token, median": ms(x["s_per_token"]),
                "tokens/s": NA if x["tokens_per_s"] is None else x["tokens_per_s"],
                "prompts × repeats": f"{x['prompts']} × {x['repeats']}",
                "tokens per answer (median)": x["tokens_median"],
            }
            for label, x in streamed
        ]
    )
    page.text(
        "Measured one request at a time over HTTP, so they include the network and the server's queue; "
        "local models below are timed in-process on forced token counts: compare endpoints with endpoints.",
        "note",
    )
    for label, x in streamed:
        for warning in x.get("warnings", []):
            page.text(f"{label}: {warning}", "note")


def _machine(m: dict[str, Any]) -> str:
    if not m:
        return NA
    loads = [f"{v:.1f}" for v in (m.get("load_before"), m.get("load_after")) if v is not None]
    return f"{m['torch_threads']} / {m['cores']}" + (f", load {' → '.join(loads)}" if loads else "")


def _latency_plot(page: HtmlReport, lat: list[tuple[str, dict[str, Any]]]) -> None:
    pyplot = plt()
    fig, (ax1, ax2) = pyplot.subplots(1, 2, figsize=(10, 3.8))
    for label, x in lat:
        xs = [p["x"] for p in x["points"]]
        med = [p["median_s"] for p in x["points"]]
        err = [[m - p["min_s"] for m, p in zip(med, x["points"], strict=True)],
               [p["max_s"] - m for m, p in zip(med, x["points"], strict=True)]]  # fmt: skip
        line = ax1.errorbar(xs, med, yerr=err, fmt="o", capsize=3, label=f"{label} (median, min-max)")[0]
        r2 = "n/a" if x["r2"] is None else f"{x['r2']:.3f}"
        ax1.plot(xs, [x["k_s_per_token"] * v + x["b_s"] for v in xs], "-", color=line.get_color(),
                 label=f"{label}: t = {x['k_s_per_token'] * 1e3:.2f} ms·x + {x['b_s'] * 1e3:.1f} ms (R² {r2})")  # fmt: skip
        if x.get("ttft"):
            ax2.plot([p["x"] for p in x["ttft"]], [p["median_s"] * 1e3 for p in x["ttft"]], "o-", label=label)
    ax1.set_xlabel("generated tokens")
    ax1.set_ylabel("seconds")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("prompt tokens")
    ax2.set_ylabel("time to first token (ms, median)")
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    page.figure(
        fig, "generation time against generated tokens with the fitted line; TTFT against prompt length"
    )


def sweep(page: HtmlReport, report: dict[str, Any]) -> None:
    """Every checkpoint's task score and benchmark accuracy; which one is the best trade-off, and which final/ is."""
    sw = report.get("sweep")
    if not sw:
        return
    page.section("Checkpoint sweep")
    page.table([{k: v for k, v in r.items() if k != "checkpoint"} for r in sw["rows"]])
    page.text(
        f"best trade-off: checkpoint-{sw['best_step']} (highest {sw['task_metric']} within the retention "
        f"threshold, on the first {report['settings']['sweep_samples']} eval samples and benchmark questions)",
        "ok",
    )
    _final_note(page, sw)
    _sweep_plot(page, sw)


def _final_note(page: HtmlReport, sw: dict[str, Any]) -> None:
    """Which checkpoint final/ is and why, when training said so (train/summary.json)."""
    final, best = sw.get("final_step"), sw["best_step"]
    if final is None:
        return
    reason = sw.get("final_reason") or "chosen by training"
    rows = {r["step"]: r for r in sw["rows"]}
    same = (
        final in rows
        and best in rows
        and all(rows[final].get(k) == rows[best].get(k) for k in ("task", "benchmark"))
    )
    if final == best:
        page.text(f"final/ is checkpoint-{final}, the best trade-off too ({reason}).", "ok")
    elif same:
        page.text(
            f"final/ is checkpoint-{final} ({reason}); it scores the same as the best trade-off "
            f"checkpoint-{best} on the sweep's questions.",
            "ok",
        )
    else:
        page.text(
            f"final/ is checkpoint-{final} ({reason}), not the best trade-off above: training keeps the lowest "
            f"eval loss, the sweep weighs the task score against retention. To use checkpoint-{best}, evaluate or "
            f"export <run>/checkpoints/checkpoint-{best} instead of the run folder.",
            "note",
        )


def _sweep_plot(page: HtmlReport, sw: dict[str, Any]) -> None:
    pyplot = plt()
    fig, (ax1, ax2) = pyplot.subplots(1, 2, figsize=(10, 3.8))
    steps = [r["step"] for r in sw["rows"]]
    ax1.plot(steps, [r["task"] for r in sw["rows"]], "o-", label=sw["task_metric"])
    if any(r.get("benchmark") is not None for r in sw["rows"]):
        ax1.plot(steps, [r.get("benchmark") for r in sw["rows"]], "s-", label=f"{sw['benchmark']} acc")
    if sw.get("base_benchmark") is not None:
        ax1.axhline(sw["base_benchmark"], color="grey", linestyle=":", label="base benchmark")
    ax1.axvline(sw["best_step"], color="green", alpha=0.4, label="best trade-off")
    if sw.get("final_step") is not None:
        ax1.axvline(sw["final_step"], color="purple", alpha=0.4, linestyle="--", label="final/")
    ax1.set_xlabel("step")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    curve = sw.get("train_curve") or []
    for key, style in (("loss", "-"), ("eval_loss", "o-")):
        pts = [(r["step"], r[key]) for r in curve if key in r]
        if pts:
            ax2.plot(*zip(*pts, strict=True), style, label=key)
    ax2.set_xlabel("step")
    ax2.set_ylabel("loss")
    ax2.grid(alpha=0.3)
    if curve:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    page.figure(
        fig, "task score and benchmark accuracy per checkpoint; train/eval loss from train/metrics.jsonl"
    )
