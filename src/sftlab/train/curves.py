"""The loss-curve figure of a run: train loss per step, eval loss (overall and per group) per evaluation."""

from __future__ import annotations

from pathlib import Path

from sftlab.utils.atomic import atomic_path


def plot_loss_curve(rows: list[dict], target: Path) -> Path | None:
    """Draw ``rows`` (metrics.jsonl lines) to a PNG; ``None`` when there is nothing to draw."""
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(*zip(*train, strict=True), label="train", color="#4c72b0", linewidth=1.2)
    eval_keys = sorted({k for r in rows for k in r if k.startswith("eval_loss")})
    for key in eval_keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        label = "eval" if key == "eval_loss" else key.removeprefix("eval_loss/")
        style = (
            {"color": "#dd8452", "linewidth": 2, "marker": "o"}
            if key == "eval_loss"
            else {"linestyle": "--", "marker": "."}
        )
        ax.plot(*zip(*pts, strict=True), label=label, **style)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (token mean)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(target)
