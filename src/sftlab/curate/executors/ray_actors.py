"""Model-based scoring on Ray: a pool of actors, each loading the model once, scoring block after block.

The ``score`` step's scores (heuristics, perplexity, IFD) are computed by
:meth:`ScoreStep.compute` on the actors; the step's decision (thresholds,
summary) then runs on the driver over those scores, in input order, with the
step's own code. A step with an LLM judge runs on the driver as a whole (its
calls and counts are one client's).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from sftlab.data.record import record_from_dict
from sftlab.errors import SftlabError

if TYPE_CHECKING:
    from sftlab.curate.executors.ray_executor import _Run
    from sftlab.curate.steps.scoring import ScoreStep


def on_actors(step: Any) -> bool:
    """Whether ``step`` is a ``score`` step whose scores the actor pool can compute."""
    from sftlab.curate.steps.scoring import ScoreStep, _cfg

    return isinstance(step, ScoreStep) and _cfg(step.config, "judge") is None


class _Scorer:
    """One actor: the step with its model loaded once (``step.lm``), then ``compute`` per block."""

    def __init__(self, step: ScoreStep):
        from sftlab.curate.steps.scoring import _cfg

        self.step = step
        self.loaded: dict[str, Any] = {}
        self.error: SftlabError | None = None
        if {"perplexity", "ifd"} & set(step.signals) and step.lm is None:
            from sftlab.models import load_model, load_tokenizer

            ref = _cfg(step.config, "model") or step.default_model
            try:
                tokenizer = load_tokenizer(ref)
                step.lm = (load_model(ref, dtype=_cfg(step.config, "dtype", "auto")), tokenizer)
            except SftlabError as err:  # raised with the first block, where it reaches the user as one line
                self.error = err
            self.loaded["model"] = ref

    def __call__(self, table: pa.Table) -> pa.Table:
        if self.error is not None:
            raise self.error
        records = [record_from_dict(orjson.loads(raw)) for raw in table.column("rec").to_pylist()]
        scores = self.step.compute(records)
        details = json.dumps(
            {**self.loaded, **self.step.details}
        ).encode()  # plain data: nothing is unpickled
        return pa.table(
            {
                "idx": table.column("idx"),
                "scores": pa.array([json.dumps(s).encode() for s in scores], pa.binary()),
                "details": pa.array([details] * len(scores), pa.binary()),
            }
        )


def score_on_actors(run: _Run, step: ScoreStep) -> None:
    """Scores of the current records from the actor pool; ``step.compute`` then returns them."""
    scored = run.ds.map_batches(
        _Scorer,
        fn_constructor_args=(step,),
        concurrency=run.ex.score_actors,
        num_gpus=run.ex.score_gpus or None,
        batch_format="pyarrow",
        batch_size=None,
    )
    scores: list[dict] = []
    for table in run.iter_tables(scored):
        scores.extend(json.loads(raw) for raw in table.column("scores").to_pylist())
        if len(table):
            step.details.update(json.loads(table.column("details")[0].as_py()))

    def precomputed(records: list) -> list[dict]:
        if len(records) != len(scores):
            raise RuntimeError(f"step {step.name}: {len(scores)} scores for {len(records)} records")
        return scores

    step.compute = precomputed
