"""Each heuristic filter and the normalize step, with positive and negative examples (English and Chinese)."""

from __future__ import annotations

import pytest

from sftlab.curate.steps.registry import build_step
from sftlab.data.record import Conversation, Meta, TextRecord, Turn
from sftlab.errors import RecipeError


def rec(prompt: str, answer: str, system: str | None = None) -> Conversation:
    return Conversation([Turn("user", prompt), Turn("assistant", answer)], system=system, meta=Meta(id="x"))


def reason(step_cfg: dict, record) -> str | None:
    return build_step(step_cfg).process(record).reason


CASES = {
    "boilerplate": [
        (rec("Tell me about cats", "As an AI language model, I cannot have pets."), "boilerplate"),
        (rec("介绍一下猫", "作为一个AI语言模型，我没有宠物。"), "boilerplate"),
        (rec("Help", "I'm sorry, but I can't help with that."), None),  # refusals are opt-in
        (rec("Tell me about cats", "Cats are small carnivorous mammals kept as pets."), None),
        (rec("介绍一下猫", "猫是一种常见的家养宠物，性格独立。"), None),
        (rec("What is an AI language model?", "An AI language model predicts the next word."), None),
    ],
    "ambiguous_reference": [
        (rec("Summarize the following:", "Sure."), "ambiguous_reference"),
        (rec("Analyse this.", "It is fine."), "ambiguous_reference"),
        (rec("请总结一下这段内容。", "好的。"), "ambiguous_reference"),
        (
            rec(
                "Summarize the following: The meeting moved to Friday because of the holiday.",
                "Moved to Friday.",
            ),
            None,
        ),
        (rec("Summarize this.", "Done.", system="Text: the quarterly report shows growth."), None),
        (rec("请总结下面这段话：今天公司召开了年度大会，宣布了新的战略。", "公司宣布了新战略。"), None),
    ],
    "time_sensitive": [
        (rec("What is today's stock price of Apple?", "I don't know."), "time_sensitive"),
        (rec("What's the current weather in Paris?", "Sunny."), "time_sensitive"),
        (rec("Give me the latest news about the election.", "..."), "time_sensitive"),
        (rec("今天的股价是多少？", "不知道。"), "time_sensitive"),
        (rec("How is the weather formed in the tropics?", "Warm air rises..."), None),
        (rec("Explain how stock prices are determined.", "By supply and demand."), None),
        (rec("天气是如何形成的？", "由大气运动形成。"), None),
    ],
    "placeholder": [
        (rec("Write a letter", "Dear [NAME], thank you."), "unfilled_placeholder"),
        (rec("Write a letter", "Hello {{customer_name}}, welcome."), "unfilled_placeholder"),
        (rec("Write a letter", "Regards, <PLACEHOLDER>"), "unfilled_placeholder"),
        (rec("写一封信", "尊敬的[姓名]，您好。"), "unfilled_placeholder"),
        (rec("Write a letter", "Sincerely, [Your Name]"), "unfilled_placeholder"),
        (rec("Pick one", "The answer is [A] because of the [link](http://x.org)."), None),
        (rec("Show code", 'Use ```python\nprint(f"{user_name}")\n```'), None),
        (rec("Write JSON", '{"name": "Ada"}'), None),
        (rec("写一封信", "尊敬的王先生，您好。"), None),
    ],
    "repetition": [
        (rec("Write a poem", "the cat sat on the mat " * 8), "repetition"),
        (rec("List", "\n".join(["- buy milk"] * 6 + ["- done now", "- and more items here"])), "repetition"),
        (rec("写诗", "我爱北京天安门" * 8), "repetition"),
        (
            rec(
                "Write a poem",
                "Roses bloom in spring while rivers carry melting snow toward distant valleys.",
            ),
            None,
        ),
        (rec("写诗", "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。"), None),
    ],
    "garbled": [
        (rec("hi", "\x00\x01\x02\x03 text \ufffd\ufffd\ufffd garbage"), "garbled"),
        (rec("hi", "§¤¶ ¦¬ ¤§ ¶¦ ¬¤ §¶ ¦¬¤ §¶¦ ¬¤§ ¶¦¬ ¤§¶ ok"), "garbled"),
        (rec("hi", "A perfectly ordinary sentence, with punctuation!"), None),
        (rec("你好", "这是一个正常的中文句子，没有乱码。"), None),
        (rec("code", "```\n#$%^&*()_+{}|:<>?~`\n```\nThat regex matches symbols."), None),
    ],
    "language": [
        (rec("Привет, как дела?", "Хорошо, спасибо."), "language_not_allowed"),
        (rec("مرحبا كيف حالك", "بخير شكرا"), "language_not_allowed"),
        (rec("Hello", "Hi there"), None),
        (rec("你好", "你好，很高兴认识你。"), None),
        (rec("2 + 2 = ?", "4"), None),
    ],
}


@pytest.mark.parametrize(
    "step,record,expected",
    [(step, r, exp) for step, cases in CASES.items() for r, exp in cases],
    ids=[f"{step}-{i}" for step, cases in CASES.items() for i in range(len(cases))],
)
def test_filter_cases(step, record, expected):
    assert reason({"type": step}, record) == expected


# ── placeholder: slots in answers, not code, maths, markup or the prompt (issue 15) ──

NOT_SLOTS = [
    "The expected value E[X] is the mean; Var[X] = E[X^2] - E[X]^2.",
    "In React, render it with <h1>Hello {name}</h1> inside the component.",
    'Python 3.6 added f-strings: print(f"Hello {name}") fills the name in.',
    "A Rust function taking a slice has the parameter type &[T] and borrows it.",
    "Methane written in SMILES with explicit hydrogens is [H]C([H])([H])[H].",
    "The payment file holds <Account><IBAN>DE89370400440532013000</IBAN></Account> per debtor.",
    'As the author wrote, "[T]here is no such thing as a free lunch."',
    "The answer is [A]; see [1] and the [docs](https://example.org) for details.",
    "[Chorus]\nWe sing all night\n[Verse 2]\nAnd dance till light",
    "Log lines look like [INFO] server started and [ERROR] disk full.",
    "Index the array with arr[INDEX] and the dict with d[KEY].",
    "Joker: [smirks] Hey there. Michael: [to Joker] Uh, hello.",
    "Destructure it in the handler: const { field, form } = props; then read field.value.",
]


@pytest.mark.parametrize("answer", NOT_SLOTS)
def test_placeholder_ignores_code_maths_and_markup(answer):
    assert reason({"type": "placeholder"}, rec("Explain", answer)) is None


SLOTS = [
    ("Thank you for your time.\n\nBest regards,\n[Your Name]", "[Your Name]"),
    ("We at [Company Name] are delighted to offer you the role.", "[Company Name]"),
    ("The meeting is on [INSERT DATE] in the main hall.", "[INSERT DATE]"),
    ("Reach me at <your email> if anything comes up.", "<your email>"),
    ("Your order number is XXX and ships tomorrow.", "XXX"),
    ("I have worked with [Employee Name] for [X] years.", "[Employee Name]"),
    ("Please see [insert link here] for the schedule.", "[insert link here]"),
    ("Dear {{ first_name }}, your account is ready.", "{{ first_name }}"),
    ("At [company name], we care about the environment.", "[company name]"),
    ("Sincerely, {Your Name}", "{Your Name}"),
    ("On **[date of outage]**, the cluster stopped serving traffic.", "[date of outage]"),
    ("Met vriendelijke groet,\n[Je naam]", "[Je naam]"),
]


@pytest.mark.parametrize("answer,token", SLOTS)
def test_placeholder_catches_slots_and_names_them(answer, token):
    decision = build_step({"type": "placeholder"}).process(rec("Write it", answer))
    assert decision.reason == "unfilled_placeholder"
    assert decision.detail == f"turn 2: {token}"


def test_placeholder_reads_answers_not_prompts():
    prompt_only = rec(
        "[TASK TYPE]: Article\n[TOPIC]: Write about [Your Name]'s garden", "Here is the article."
    )
    assert reason({"type": "placeholder"}, prompt_only) is None
    assert reason({"type": "placeholder", "field": "all"}, prompt_only) == "unfilled_placeholder"
    later = Conversation(
        [
            Turn("user", "Draft it"),
            Turn("assistant", "Done."),
            Turn("user", "Sign it"),
            Turn("assistant", "[Name]"),
        ],
        meta=Meta(id="x"),
    )
    assert reason({"type": "placeholder"}, later) is None  # an answer that is only a bracket is a value
    later.turns[3].content = "Kind regards,\n[Name]"
    assert build_step({"type": "placeholder"}).process(later).detail == "turn 4: [Name]"


# ── repetition: one answer at a time unless asked (issue 15) ──


def multi_turn(*answers: str) -> Conversation:
    turns = []
    for i, a in enumerate(answers):
        turns += [Turn("user", f"Rewrite it, version {i}"), Turn("assistant", a)]
    return Conversation(turns, meta=Meta(id="x"))


REWRITE = (
    "Our bakery opens at seven every morning and sells fresh sourdough, rye and seeded loaves, "
    "baked by hand from local flour, with coffee from a roaster down the street."
)


def test_repetition_judges_each_answer_alone():
    rewrites = multi_turn(REWRITE, REWRITE.replace("seven", "eight"), REWRITE.replace("rye", "spelt"))
    assert reason({"type": "repetition"}, rewrites) is None
    decision = build_step({"type": "repetition", "across_turns": True}).process(rewrites)
    assert decision.reason == "repetition"
    assert decision.detail.startswith("turns 2, 4, 6 together: ")


def test_repetition_names_the_looping_turn():
    looping = multi_turn(REWRITE, "the cat sat on the mat " * 8, REWRITE)
    decision = build_step({"type": "repetition"}).process(looping)
    assert decision.reason == "repetition"
    assert decision.detail.startswith("turn 4: ")


# ── refusals: opt-in, and a hedge or a clarifying question is not one (issue 15) ──


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("I'm sorry, but I can't help with that.", "refusal"),
        ("抱歉，我无法提供这个帮助。", "refusal"),
        ("I'm sorry, I can't provide the exact code. However, here is a sketch:\nfor x in y: pass", None),
        ("I am unable to provide an answer without the text. Could you please paste it?", None),
        ("Unfortunately, I am unable to provide a table. Here are the main points instead: a, b.", None),
    ],
)
def test_refusals_when_enabled(answer, expected):
    assert reason({"type": "boilerplate", "refusals": True}, rec("Do it", answer)) == expected


def test_language_allows_cyrillic_when_configured():
    r = rec("Привет, как дела?", "Хорошо, спасибо.")
    assert reason({"type": "language", "allowed_languages": ["ru", "en"]}, r) is None
    assert (
        reason({"type": "language", "allowed_languages": ["zh"]}, rec("Hello", "Hi"))
        == "language_not_allowed"
    )


def test_length_words_chars_and_cjk():
    assert reason({"type": "length", "min": 5}, rec("Hi", "Yo")) == "too_short"
    assert reason({"type": "length", "max": 5}, rec("one two three", "four five six")) == "too_long"
    assert reason({"type": "length", "min": 5, "max": 50}, rec("one two three", "four five six")) is None
    # Each CJK character is a word: 6 + 4 = 10.
    assert reason({"type": "length", "max": 9}, rec("今天天气很好", "是的很好")) == "too_long"
    assert reason({"type": "length", "max": 10}, rec("今天天气很好", "是的很好")) is None
    assert reason({"type": "length", "unit": "chars", "min": 20}, rec("abc", "def")) == "too_short"
    assert reason({"type": "length"}, rec("A question?", "   ")) == "empty_response"


def test_length_in_tokens_uses_the_real_tokenizer(tokenizer):
    text = "Pneumonoultramicroscopicsilicovolcanoconiosis is a notoriously long word."
    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n > len(text.split())  # tokens, not words, are counted
    cfg = {"type": "length", "unit": "tokens", "field": "response"}
    assert reason({**cfg, "max": n}, rec("q", text)) is None
    assert reason({**cfg, "max": n - 1}, rec("q", text)) == "too_long"


def test_off_topic_is_conservative():
    prompt = (
        "Explain how photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen "
        "inside chloroplasts of green plants"
    )
    on = rec(prompt, "In chloroplasts, plants use sunlight to turn water and carbon dioxide into glucose.")
    off = rec(prompt, "My favourite football team won the championship last season after a great final.")
    assert reason({"type": "off_topic"}, on) is None
    assert reason({"type": "off_topic"}, off) == "off_topic"
    assert reason({"type": "off_topic"}, rec("Hi there", "Completely unrelated words here")) is None


def test_text_records_pass_through_conversation_only_filters():
    t = TextRecord("Plain pre-training text about rivers and mountains.")
    for step in ("ambiguous_reference", "off_topic", "boilerplate", "placeholder"):
        assert reason({"type": step}, t) is None


# ── normalize ─────────────────────────────────────────────────────────────


def normalise(record, **cfg):
    step = build_step({"type": "normalize", **cfg})
    decision = step.process(record)
    assert decision.kept
    return decision


def test_normalize_repairs_strips_and_records_edits():
    d = normalise(rec("CafÃ©   <b>menu</b> &amp; prices\u200b", "Itâ€™s  fine.\n\n\n\nBye   "))
    r = d.record
    assert r.instruction == "Café menu & prices"
    assert r.response == "It’s fine.\n\nBye"
    assert d.edited
    assert set(r.meta.provenance["curation_edits"]) == {"unicode_repair", "html", "whitespace"}


def test_normalize_keeps_code_fences_and_placeholders():
    answer = "Run:\n```python\nx  =  '<b>'   # spaced\n```\nFill in <PLACEHOLDER>."
    d = normalise(rec("How?", answer))
    assert d.record.response == answer
    assert not d.edited
    assert "curation_edits" not in d.record.meta.provenance


def test_normalize_unicode_forms():
    assert normalise(rec("ﬁne Ｈｅｌｌｏ", "ok"), unicode_form="NFKC").record.instruction == "fine Hello"
    assert normalise(rec("ﬁne", "ok"), unicode_form="NFC").record.instruction == "ﬁne"


def test_normalize_punctuation_modes():
    zh = rec("你好,世界!How are you？", "好的(谢谢)")
    half = normalise(zh, punctuation="halfwidth").record
    assert half.instruction == "你好,世界!How are you?"
    full = normalise(rec("你好,世界!How are you？", "好的(谢谢)"), punctuation="fullwidth_for_cjk").record
    assert full.instruction == "你好，世界！How are you?"
    assert full.response == "好的（谢谢）"
    assert (
        normalise(rec("价格是3.5元", "ok"), punctuation="fullwidth_for_cjk").record.instruction
        == "价格是3.5元"
    )


@pytest.mark.parametrize(
    "style,fence,expected",
    [
        ("compact", "fenced", 'Result:\n```json\n{"a":1,"b":[1,2]}\n```'),
        ("indent", "bare", 'Result:\n{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}'),
        ("compact", "bare", 'Result:\n{"a":1,"b":[1,2]}'),
        ("line", "bare", 'Result:\n{"a": 1, "b": [1, 2]}'),
    ],
)
def test_normalize_one_json_style_everywhere(style, fence, expected):
    for answer in ('Result:\n```json\n{"a": 1, "b": [1, 2]}\n```', 'Result:\n{"a":1,\n  "b": [1,2]}'):
        d = normalise(rec("json please", answer), json_style=style, json_fence=fence)
        assert d.record.response == expected
    # Prompts are not reformatted, only answers.
    d = normalise(rec('{"a": 1}', "ok"), json_style="compact")
    assert d.record.instruction == '{"a": 1}'


def test_normalize_leaves_invalid_json_and_code_alone():
    answer = "```json\n{not json}\n```\nand a list [1, 2"
    assert normalise(rec("q", answer), json_style="compact").record.response == answer


def test_flag_action_keeps_and_notes():
    step = build_step({"type": "placeholder", "action": "flag"})
    from sftlab.curate.steps.base import StepStats

    stats = StepStats("placeholder")
    out = list(step.run([rec("w", "Dear [NAME]"), rec("w", "Dear Ann")], stats))
    assert all(d.kept for d in out)
    assert out[0].record.meta.extra["flags"] == ["placeholder:unfilled_placeholder"]
    assert "flags" not in out[1].record.meta.extra
    assert (stats.kept, stats.flagged, stats.rejected_total) == (2, 1, 0)


def test_bad_step_config_is_a_recipe_error():
    with pytest.raises(RecipeError, match="length"):
        build_step({"type": "length", "min": -1})
    with pytest.raises(RecipeError, match="type"):
        build_step({"type": "no_such_step"})


def test_placeholder_reads_template_variables_in_prompts_but_not_prompt_slots():
    from sftlab.curate.steps.filters_placeholder import PlaceholderFilter

    def record(prompt, answer="Category: billing."):
        return Conversation(turns=[Turn("user", prompt), Turn("assistant", answer)])

    check = PlaceholderFilter().check
    assert check(record("Ticket: Hi {{customer_name}}, my invoice is wrong.")) == (
        "unfilled_placeholder",
        "turn 1: {{customer_name}}",
    )
    assert (
        check(record("[TASK TYPE]: Article\nWrite about tea.")) is None
    )  # a prompt slot is the user's business
    assert check(record("Explain `{{ name }}` in Jinja templates.")) is None  # code, not a leftover
    assert check(record("What does {{#if admin}}...{{/if}} do in Handlebars?")) is None
