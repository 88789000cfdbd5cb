"""Benchmarks on an endpoint through ``/v1/completions`` with ``echo`` + ``logprobs``: the same picks and scores
as scoring the same weights in-process.

``sftlab serve`` refuses ``echo`` (see test_eval_endpoint), so the endpoint here is a small real HTTP server
that answers the legacy call as OpenAI documents it (prompt tokens echoed with their log-probabilities and
character offsets, then one greedy token), computed by a real tiny model.
"""

from __future__ import annotations

import pytest

from eval_helpers import toy_questions, train_on_questions
from sftlab.evaluate.benchmarks import build_benchmark
from sftlab.evaluate.endpoint import Endpoint
from sftlab.evaluate.endpoint_logprobs import run_benchmarks
from sftlab.recipe.sections.evaluation import EndpointSection
from sftlab.serve.testing import running_server
from sftlab.testing import tiny_llama


def echo_app(model, tokenizer):
    """``GET /v1/models`` and ``POST /v1/completions`` (echo, logprobs, max_tokens 1) over ``model``."""
    import torch
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "t"}]}

    @app.post("/v1/completions")
    def completions(body: dict):
        text = body["prompt"]
        ids = tokenizer(text, add_special_tokens=True).input_ids
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        nxt = int(logp[-1].argmax())
        token_lp = [None] + [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))] + [float(logp[-1, nxt])]
        offsets = [len(tokenizer.decode(ids[:i])) for i in range(len(ids))] + [len(text)]
        tokens = [tokenizer.decode([i]) for i in [*ids, nxt]]
        logprobs = {
            "tokens": tokens,
            "token_logprobs": token_lp,
            "text_offset": offsets,
            "top_logprobs": None,
        }
        choice = {"index": 0, "text": text + tokens[-1], "finish_reason": "length", "logprobs": logprobs}
        usage = {"prompt_tokens": len(ids), "completion_tokens": 1, "total_tokens": len(ids) + 1}
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "tiny",
                "choices": [choice], "usage": usage}  # fmt: skip

    return app


@pytest.fixture(scope="module")
def served(tokenizer):
    model = tiny_llama(tokenizer)
    train_on_questions(model, tokenizer, toy_questions(12), steps=30)
    model.eval()
    with running_server(echo_app(model, tokenizer)) as url:
        yield model, Endpoint("echo", EndpointSection(label="echo", url=url, concurrency=2))


@pytest.mark.parametrize("scoring", ["cloze", "letter", "option_text"])
def test_endpoint_scores_equal_in_process_scores(served, tokenizer, scoring):
    model, endpoint = served
    bench = build_benchmark("toy", toy_questions(12), subset=8, k_shot=1, scoring=scoring, seed=0)
    local = bench.run(model, tokenizer, batch_size=4)
    remote, na = run_benchmarks(endpoint, [bench])
    assert na == {} and endpoint.model == "tiny"
    got = remote["toy"]
    assert got.predictions == local.predictions and got.correct == local.correct
    flat = [x for row in got.scores for x in row]
    assert flat == pytest.approx([x for row in local.scores for x in row], abs=1e-4)
    assert got.accuracy == local.accuracy and got.n == 8
