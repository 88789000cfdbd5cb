"""Hyperparameter defaults from practice, in one place.

Adapters tolerate (and need) learning rates ~20× higher than full fine-tuning,
and soft prompts higher still; these are the usual starting points of the
LoRA/QLoRA and prompt-tuning papers and of common recipes.
"""

from __future__ import annotations

DEFAULT_LR = {
    "full": 1e-5,
    "freeze": 1e-5,
    "lora": 2e-4,
    "qlora": 2e-4,
    "prompt_tuning": 3e-2,
    "p_tuning": 1e-3,
}
"""Peak learning rate per method when ``training.lr`` is unset."""

MAX_SAFE_LR = {
    "full": 5e-5,
    "freeze": 1e-4,
    "lora": 1e-3,
    "qlora": 1e-3,
    "prompt_tuning": 3e-1,
    "p_tuning": 1e-2,
}
"""Above these, ``doctor`` warns: training usually diverges or forgets."""


def learning_rate(method: str, lr: float | None) -> float:
    """The recipe's learning rate, or the method's default.

    >>> learning_rate("lora", None), learning_rate("full", 3e-5)
    (0.0002, 3e-05)
    """
    return lr if lr is not None else DEFAULT_LR[method]


def eval_interval(total_steps: int, eval_steps: int | None, evaluations: int = 10) -> int:
    """Evaluate every ``eval_steps``, or about ``evaluations`` times per run.

    >>> eval_interval(1000, None), eval_interval(5, None), eval_interval(1000, 7)
    (100, 1, 7)
    """
    if eval_steps is not None:
        return eval_steps
    return max(1, total_steps // evaluations)
