"""The score step: heuristics, perplexity/IFD with real tokenizers and models, the LLM judge over HTTP."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import torch

from sftlab.curate.judge import Judge, parse_rating, render_prompt
from sftlab.curate.steps.base import StepStats
from sftlab.curate.steps.perplexity import answer_losses, encode_pair, model_scores
from sftlab.curate.steps.registry import build_step, build_steps
from sftlab.curate.steps.scoring import format_checks, heuristic_scores, moving_ttr
from sftlab.data.record import Conversation, Meta, TextRecord, Turn
from sftlab.errors import RecipeError, SftlabError


def conv(prompt: str, answer: str, id: str | None = None, **meta) -> Conversation:
    return Conversation(turns=[Turn("user", prompt), Turn("assistant", answer)], meta=Meta(id=id, **meta))


GOOD = (
    "To bake bread you need flour, water, salt and yeast.\n\n"
    "1. Mix the flour with the salt and the yeast.\n"
    "2. Add warm water and knead the dough for ten minutes until it is smooth.\n"
    "3. Let it rise for an hour, shape a loaf, and bake it at 220 degrees for forty minutes.\n\n"
    "Cool the loaf on a rack before slicing, otherwise the crumb turns gummy."
)


# ── heuristics ──────────────────────────────────────────────────────────────


def test_heuristic_prefers_substantive_varied_wellformed_answers():
    good = heuristic_scores(conv("How do I bake bread?", GOOD))
    terse = heuristic_scores(conv("How do I bake bread?", "Bake it"))
    loop = heuristic_scores(conv("How do I bake bread?", "bake the bread " * 60))
    assert good["heuristic"] > terse["heuristic"]
    assert good["heuristic"] > loop["heuristic"]
    assert loop["diversity"] < 0.1 < good["diversity"]
    for scores in (good, terse, loop):
        assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_heuristic_of_empty_answer_is_zero_and_text_records_are_scored():
    assert heuristic_scores(conv("Hi", ""))["heuristic"] == 0.0
    assert heuristic_scores(TextRecord(GOOD))["heuristic"] > 0.5


def test_format_checks_catch_truncation_and_loops():
    assert not format_checks("```python\nprint(1)\n", 3)["balanced_fences"]
    assert not format_checks("and then the model wrote a sentence that stops in the middle of", 13)[
        "clean_ending"
    ]
    lines = "This line is long enough to count.\n" * 3
    assert not format_checks(lines, 21)["no_repeated_lines"]
    assert all(format_checks(GOOD, 80).values())


def test_moving_ttr_does_not_fall_with_length_for_varied_text():
    varied = [f"w{i}" for i in range(500)]
    assert moving_ttr(varied) == 1.0
    assert moving_ttr(["a", "b"] * 100) == pytest.approx(2 / 50)


# ── rendering the answer with the chat template ─────────────────────────────


def test_encode_pair_splits_prompt_and_answer_with_the_real_template(tokenizer):
    pair = encode_pair(tokenizer, conv("What is 2+2?", "It is 4."))
    prompt, bare, answer = (tokenizer.decode(x) for x in (pair.prompt, pair.bare, pair.answer))
    assert prompt.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert answer == "It is 4.<|im_end|>"
    # the bare context has the same template scaffolding, without the instruction
    assert bare.endswith("<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n")
    assert "2+2" not in bare


def test_encode_pair_scores_the_last_assistant_turn_in_context(tokenizer):
    record = Conversation(
        system="Be brief.",
        turns=[
            Turn("user", "Hi"),
            Turn("assistant", "Hello."),
            Turn("user", "Bye"),
            Turn("assistant", "Bye!"),
        ],
    )
    pair = encode_pair(tokenizer, record)
    assert tokenizer.decode(pair.answer) == "Bye!<|im_end|>"
    assert "Be brief." in tokenizer.decode(pair.prompt)
    assert "Hello." in tokenizer.decode(pair.prompt)


def test_encode_pair_edge_cases(tokenizer):
    assert encode_pair(tokenizer, Conversation(turns=[Turn("user", "no answer")])) is None
    text = encode_pair(tokenizer, TextRecord("plain text"))
    assert text.prompt == [] and tokenizer.decode(text.answer) == "plain text"
    long = encode_pair(tokenizer, conv("word " * 400, "answer " * 400), max_length=128)
    assert len(long.prompt) + len(long.answer) <= 128
    assert len(long.answer) == 64  # half the window for the answer, the end of the prompt for the rest


# ── perplexity and IFD ──────────────────────────────────────────────────────


RECORDS = [
    conv("What is 2+2?", "It is 4."),
    conv(
        "Write a haiku about rain", "Grey clouds gather low\nsoft rain on the tin rooftop\nthe gutters murmur"
    ),
    TextRecord("Plain text for continued pre-training."),
    Conversation(turns=[Turn("user", "unanswered")]),
    conv("Explain " + "why " * 30, "Because."),
]


def _reference_loss(model, ids: list[int], start: int) -> float:
    """Mean answer NLL through the model's own ``labels`` loss — an independent implementation."""
    input_ids = torch.tensor([ids])
    labels = input_ids.clone()
    labels[0, :start] = -100
    with torch.no_grad():
        return model(input_ids=input_ids, labels=labels).loss.item()


def test_answer_losses_match_the_models_own_loss_and_do_not_depend_on_batching(tokenizer, tiny_model):
    batched = answer_losses(tiny_model, tokenizer, RECORDS, batch_size=8)
    single = answer_losses(tiny_model, tokenizer, RECORDS, batch_size=1)
    for (c1, b1), (c2, b2) in zip(batched, single, strict=True):
        assert (c1 is None) == (c2 is None) and (b1 is None) == (b2 is None)
        if c1 is not None:
            assert c1 == pytest.approx(c2, rel=1e-4)
        if b1 is not None:
            assert b1 == pytest.approx(b2, rel=1e-4)
    pair = encode_pair(tokenizer, RECORDS[1])
    cond, bare = batched[1]
    assert cond == pytest.approx(
        _reference_loss(tiny_model, pair.prompt + pair.answer, len(pair.prompt)), rel=1e-4
    )
    assert bare == pytest.approx(
        _reference_loss(tiny_model, pair.bare + pair.answer, len(pair.bare)), rel=1e-4
    )
    assert batched[2][0] is None and batched[2][1] is not None  # text: perplexity only
    assert batched[3] == (None, None)  # no answer


def test_model_scores_formula():
    scores = model_scores(1.2, 2.4)
    assert scores["ifd"] == pytest.approx(0.5)
    assert scores["perplexity"] == pytest.approx(math.exp(1.2), rel=1e-4)


class KeywordLM(torch.nn.Module):
    """A causal LM with controlled logits: it knows the answer only once ``keyword`` has been read.

    After the keyword, each answer token strongly predicts the next one; without
    it, every token is equally likely. So the instruction that carries the
    keyword makes the answer easy (IFD well below 1), any other leaves it as
    hard as the bare answer (IFD 1).
    """

    def __init__(self, vocab_size: int, keyword: int, chain: list[int]):
        super().__init__()
        self.vocab_size, self.keyword = vocab_size, keyword
        self.next = dict(zip(chain[:-1], chain[1:], strict=True))
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        seen = (input_ids == self.keyword).cumsum(1) > 0
        for (row, pos), token in zip(seen.nonzero().tolist(), input_ids[seen].tolist(), strict=True):
            if token in self.next:
                logits[row, pos, self.next[token]] = 30.0
        return SimpleNamespace(logits=logits)


@pytest.fixture
def keyword_lm(tokenizer):
    answer = "Blue, on a clear day."  # distinct tokens: each one names its successor
    pair = encode_pair(tokenizer, conv("Which colour is the sky?", answer))
    keyword = tokenizer(" sky", add_special_tokens=False)["input_ids"][-1]
    assert keyword in pair.prompt and keyword not in pair.bare + pair.answer
    assert len(set(pair.answer)) == len(pair.answer)
    return KeywordLM(len(tokenizer), keyword, [pair.prompt[-1], *pair.answer]), answer


def test_ifd_is_low_when_the_instruction_predicts_the_answer(tokenizer, keyword_lm):
    model, answer = keyword_lm
    records = [conv("Which colour is the sky?", answer), conv("What is the capital of Peru?", answer)]
    (fit_c, fit_b), (unrelated_c, unrelated_b) = answer_losses(model, tokenizer, records)
    fit, unrelated = fit_c / fit_b, unrelated_c / unrelated_b
    assert fit < 0.1
    assert unrelated == pytest.approx(1.0, abs=1e-3)
    assert fit < unrelated


def test_score_step_writes_scores_and_drops_by_ifd(tokenizer, keyword_lm):
    model, answer = keyword_lm
    records = [
        conv("Which colour is the sky?", answer, id="fit"),
        conv("What is the capital of Peru?", answer, id="unrelated"),
        Conversation(turns=[Turn("user", "no answer")], meta=Meta(id="empty")),
    ]
    step = build_step({"type": "score", "max_ifd": 0.9})
    step.lm = (model, tokenizer)
    stats = StepStats("score")
    decisions = list(step.run(records, stats))
    assert [d.reason for d in decisions] == [None, "high_ifd", None]
    assert stats.records_in == 3 and stats.kept == 2 and stats.rejected == {"high_ifd": 1}
    fit = records[0].meta.extra["scores"]
    assert set(fit) == {"heuristic", "length", "diversity", "format", "perplexity", "ifd"}
    assert fit["ifd"] < 0.1
    assert "ifd" not in records[2].meta.extra["scores"]  # never dropped for a score it lacks
    assert stats.details["score_summary"]["ifd"]["missing"] == 1


def test_score_step_thresholds_and_flag_action(tokenizer):
    records = [
        conv("How do I bake bread?", GOOD, id="good"),
        conv("How do I bake bread?", "Bake it", id="terse"),
    ]
    step = build_step({"type": "score", "signals": ["heuristic"], "min_score": 0.6, "action": "flag"})
    stats = StepStats("score")
    decisions = list(step.run(records, stats))
    assert all(d.kept for d in decisions)
    assert records[1].meta.extra["flags"] == ["score:low_score"]
    assert stats.flagged == 1 and "flags" not in records[0].meta.extra


def test_score_step_loads_the_recipe_model_and_drops_by_perplexity(tiny_model_dir):
    records = [conv("What is 2+2?", "It is 4."), TextRecord("Some text.")]
    # the model comes from the recipe's model.name, passed down by build_steps
    (step,) = build_steps([{"type": "score", "max_perplexity": 2.0}], model=str(tiny_model_dir))
    decisions = list(step.run(records, StepStats("score")))
    # a random tiny model is maximally confused: perplexity near the vocabulary size
    assert [d.reason for d in decisions] == ["high_perplexity", "high_perplexity"]
    assert records[0].meta.extra["scores"]["perplexity"] > 1000
    assert "ifd" in records[0].meta.extra["scores"] and "ifd" not in records[1].meta.extra["scores"]
    assert step.details["model"] == str(tiny_model_dir)


# ── the LLM judge ───────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Clear and correct.\nScore: 8", 8.0),
        ("**Rating:** 6/10", 6.0),
        ('Here you go: {"score": 9, "reason": "good"}', 9.0),
        ("[[3]]", 3.0),
        ("7", 7.0),
        ("Quality is 2 of 10 at first glance, but on reflection... Score: 5", 5.0),
        ("Score: 11", None),
        ("Score: 0", None),
        ("A solid answer overall.", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_rating(reply, expected):
    assert parse_rating(reply) == expected


def test_render_prompt_keeps_braces_in_the_data():
    record = conv("Format {name} as JSON", '{"name": 1}')
    text = render_prompt("I: {instruction}\nR: {response}", record)
    assert text == 'I: Format {name} as JSON\nR: {"name": 1}'


class _JudgeHandler(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible chat endpoint with fixed-format judge replies."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        self.server.seen.append((self.path, body["model"], self.headers.get("Authorization")))
        if "MALFORMED" in prompt:
            content = "I would rather not put a number on it."
        elif "QUALITY" in prompt:
            content = "Correct and clear.\nScore: 8"
        else:
            content = '{"score": 3}'
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.seen
    server.shutdown()
    server.server_close()


def test_judge_scores_records_over_http_and_counts_malformed(judge_url, monkeypatch):
    url, seen = judge_url
    monkeypatch.setenv("SFTLAB_TEST_JUDGE_KEY", "secret")
    records = [conv(f"Question {i}", f"Answer {i}.") for i in range(5)] + [conv("MALFORMED", "x")]
    judge = Judge(base_url=url, model="judge-model", api_key_env="SFTLAB_TEST_JUDGE_KEY", max_workers=4)
    results = judge.score(records)
    assert results[:5] == [{"judge_quality": 8.0, "judge_complexity": 3.0}] * 5
    assert results[5] == {"judge_quality": None, "judge_complexity": None}
    assert judge.counts == {"requests": 12, "malformed": 2}
    assert len(seen) == 12
    assert all(
        p == "/v1/chat/completions" and m == "judge-model" and a == "Bearer secret" for p, m, a in seen
    )


def test_score_step_with_judge_and_min_score_on_a_judge_rating(judge_url):
    url, _ = judge_url
    records = [conv("Explain tides", GOOD, id="ok"), conv("MALFORMED", "x", id="bad")]
    step = build_step(
        {
            "type": "score",
            "signals": ["heuristic"],
            "judge": {"base_url": url, "model": "m", "aspects": ["quality"]},
            "min_score": 9,
            "score_key": "judge_quality",
        }
    )
    stats = StepStats("score")
    decisions = list(step.run(records, stats))
    # 8 < 9 → low_score; the malformed one has no rating and is kept
    assert [d.reason for d in decisions] == ["low_score", None]
    assert records[0].meta.extra["scores"]["judge_quality"] == 8.0
    assert records[1].meta.extra["scores"]["judge_quality"] is None
    assert stats.details["judge"] == {"model": "m", "requests": 2, "malformed": 1}


def test_judge_fails_clearly_when_the_endpoint_is_down():
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = Judge(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0, timeout=5)
    with pytest.raises(SftlabError, match="every request to the judge"):
        judge.score([conv("q", "a")])
    assert judge.counts["errors"] == 2


def test_judge_missing_key_and_unknown_aspect_are_user_errors(monkeypatch):
    monkeypatch.delenv("SFTLAB_NO_SUCH_KEY", raising=False)
    judge = Judge(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="SFTLAB_NO_SUCH_KEY")
    with pytest.raises(SftlabError, match="SFTLAB_NO_SUCH_KEY is not set"):
        judge.score([conv("q", "a")])
    with pytest.raises(SftlabError, match="no judge prompt for aspect 'humour'"):
        Judge(base_url="http://127.0.0.1:9/v1", model="m", aspects=["humour"])


def test_judge_against_sftlab_serve_counts_an_untrained_models_replies_as_malformed(tiny_model_dir):
    """End to end through our own OpenAI-compatible server: a random tiny model cannot rate, and that is counted."""
    from sftlab.serve.testing import running_server

    with running_server(tiny_model_dir, served_name="judge", max_batch=4) as url:
        judge = Judge(base_url=url, model="judge", aspects=["quality"], max_tokens=4, max_workers=2)
        results = judge.score([conv("What is 2+2?", "4"), conv("Name a colour.", "Red")])
    assert judge.counts["requests"] == 2 and judge.counts["errors"] == 0
    # random tokens are practically never a rating; any that parse must be in range
    assert all(r["judge_quality"] is None or 1 <= r["judge_quality"] <= 10 for r in results)
    assert judge.counts["malformed"] == sum(r["judge_quality"] is None for r in results)


def test_score_step_on_no_records_loads_nothing():
    step = build_step({"type": "score", "model": "/no/such/model"})
    assert list(step.run([], StepStats("score"))) == []


def test_min_score_on_an_unknown_score_is_a_recipe_error():
    step = build_step({"type": "score", "signals": ["heuristic"], "min_score": 0.5, "score_key": "heuristc"})
    with pytest.raises(RecipeError, match="'heuristc' has no value on any record; known scores: diversity"):
        list(step.run([conv("q", "a")], StepStats("score")))


# ── packed scoring, every turn or the last ─────────────────────────────────

MULTI = [
    Conversation(
        system="Be brief.",
        turns=[
            Turn("user", "Hi"),
            Turn("assistant", "Hello, how can I help?"),
            Turn("user", "Name a colour."),
            Turn("assistant", "Blue."),
        ],
    ),
    conv(
        "Write a haiku about rain", "Grey clouds gather low\nsoft rain on the tin rooftop\nthe gutters murmur"
    ),
    TextRecord("Plain text for continued pre-training."),
    conv("Explain " + "why " * 30, "Because it is so, and for no other reason at all."),
    Conversation(turns=[Turn("user", "unanswered")]),
]


@pytest.mark.parametrize("turns", ["last", "all"])
def test_packed_scores_equal_padded_scores(tokenizer, tiny_model, turns):
    packed = answer_losses(
        tiny_model, tokenizer, MULTI, turns=turns, packed=True, batch_size=2, max_length=256
    )
    padded = answer_losses(
        tiny_model, tokenizer, MULTI, turns=turns, packed=False, batch_size=3, max_length=256
    )
    for (c1, b1), (c2, b2) in zip(packed, padded, strict=True):
        assert (c1 is None) == (c2 is None) and (b1 is None) == (b2 is None)
        for x, y in ((c1, c2), (b1, b2)):
            if x is not None:
                assert x == pytest.approx(y, abs=1e-4)
    assert packed[4] == (None, None)


def test_all_turns_is_the_training_loss_and_differs_from_the_last_turn(tokenizer, tiny_model):
    from sftlab.render import render_record

    record = MULTI[0]
    ((cond_all, bare_all),) = answer_losses(tiny_model, tokenizer, [record], turns="all")
    ((cond_last, _),) = answer_losses(tiny_model, tokenizer, [record], turns="last")
    sample = render_record(record, tokenizer)
    labels = torch.tensor([sample.labels])
    assert (labels != -100).sum() > len(tokenizer("Blue.", add_special_tokens=False)["input_ids"]) + 1
    with torch.no_grad():  # the model's own loss over the training labels (every assistant turn)
        reference = tiny_model(input_ids=torch.tensor([sample.input_ids]), labels=labels).loss.item()
    assert cond_all == pytest.approx(reference, abs=1e-4)
    assert cond_all != pytest.approx(cond_last, abs=1e-3)
    assert bare_all is not None


def test_models_without_position_ids_are_scored_padded(tokenizer, keyword_lm, tiny_model):
    from sftlab.curate.steps.perplexity import supports_packing

    model, _ = keyword_lm
    assert not supports_packing(model) and supports_packing(tiny_model)
    step = build_step({"type": "score", "signals": ["perplexity"], "turns": "all"})
    step.lm = (tiny_model, tokenizer)
    list(step.run([conv("Hi", "Hello there.")], StepStats("score")))
    assert step.details["model_scoring"] == {"turns": "all", "packed": True}


def test_judge_replies_are_cached_and_a_rerun_asks_only_for_what_is_missing(judge_url, tmp_path):
    url, seen = judge_url
    cache = tmp_path / "judge.sqlite"
    records = [conv(f"Question {i}", f"Answer {i}.") for i in range(3)]
    first = Judge(base_url=url, model="m", cache=cache).score(records)
    assert len(seen) == 6
    again = Judge(base_url=url, model="m", cache=cache)
    more = records + [conv("Question 3", "Answer 3.")]
    assert again.score(more)[:3] == first
    assert again.counts == {"cache_hits": 6, "requests": 2} and len(seen) == 8
    other = Judge(base_url=url, model="other-model", cache=cache)  # another judge: its own replies
    other.score(records[:1])
    assert other.counts["requests"] == 2 and other.counts["cache_hits"] == 0


def test_repeated_lines_inside_code_are_not_a_formatting_fault():
    code = (
        "Two handlers:\n\n```js\napp.get('/a', (req, res) => { res.send(render(req.query)); });\n"
        "app.get('/a', (req, res) => { res.send(render(req.query)); });\n```\n\nBoth render the query."
    )
    assert format_checks(code, 20)["no_repeated_lines"]
    prose = "This sentence is long enough to count as a line.\n" * 2
    assert not format_checks(prose, 20)["no_repeated_lines"]


def test_perplexity_alone_skips_the_answer_alone_pass(tokenizer, tiny_model):
    both = answer_losses(tiny_model, tokenizer, MULTI, max_length=256)
    alone = answer_losses(tiny_model, tokenizer, MULTI, max_length=256, ifd=False)
    for (c1, _), (c2, b2) in zip(both, alone, strict=True):
        assert (c1 is None and c2 is None) or c1 == pytest.approx(c2, abs=1e-5)
        assert b2 is None or c1 is None  # only a text record (no prompt) keeps its single loss
    assert alone[2][1] == pytest.approx(both[2][1], abs=1e-5)  # the text record's perplexity
    step = build_step({"type": "score", "signals": ["perplexity"]})
    step.lm = (tiny_model, tokenizer)
    records = [conv("What is 2+2?", "It is 4.")]
    list(step.run(records, StepStats("score")))
    assert set(records[0].meta.extra["scores"]) == {"perplexity"}
