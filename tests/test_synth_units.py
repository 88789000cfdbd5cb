"""Pure parts of data synthesis: parsing teacher text, similarity, chunking, templates, cache, filters."""

from __future__ import annotations

import threading

import pytest

from sftlab.errors import DataError, RecipeError
from sftlab.recipe.load import recipe_from_dict
from sftlab.recipe.sections.synth import SelfInstructSection
from sftlab.synth.cache import CachedResponse, RequestCache, request_key
from sftlab.synth.doc_qa import split_document
from sftlab.synth.evol_instruct import answer_problem, evolution_problem
from sftlab.synth.parse import parse_json_objects, parse_numbered_list, parse_yes_no
from sftlab.synth.self_instruct import SEED_TASKS, instruction_problem, load_seed_tasks
from sftlab.synth.similarity import RougeIndex, rouge_l, token_f1
from sftlab.synth.templates import builtin_ids, load_templates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"instruction": "q", "output": "a"}]', [{"instruction": "q", "output": "a"}]),
        (
            'Sure, here:\n```json\n{"input": "", "output": "x"}\n```\nHope it helps',
            [{"input": "", "output": "x"}],
        ),
        ('```json\n[{"a": 1}, {"a": 2}, {"a": 3, "b": "cut', [{"a": 1}, {"a": 2}]),
        ("[{'single': 'quotes'}]", []),
        ("no json here", []),
        ('[1, "x", {"ok": true}]', [{"ok": True}]),
    ],
)
def test_parse_json_objects_recovers_complete_objects_only(text, expected):
    assert parse_json_objects(text) == expected


def test_parse_numbered_list_and_yes_no():
    text = "Here are tasks:\n1. Write a poem.\n2) Sort numbers\n\nTask 3: Name a bird.\n- not numbered"
    assert parse_numbered_list(text) == ["Write a poem.", "Sort numbers", "Name a bird."]
    assert parse_numbered_list("just prose") == []
    assert [parse_yes_no(t) for t in ["Yes.", "NO", "  no, it is not", "It depends", ""]] == [
        True,
        False,
        False,
        None,
        None,
    ]


def test_similarity_scores():
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("a b c d", "e f g") == 0.0
    # LCS "a c d" = 3 of 4 and 3 of 5 words.
    assert rouge_l("a b c d", "a x c d y") == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert token_f1("the cat sat", "sat the cat") == 1.0
    assert token_f1("", "x") == 0.0
    index = RougeIndex()
    for text in ["write a poem about the sea", "sort a list of numbers"]:
        index.add(text)
    assert index.max_score("sort a list of numbers quickly") == pytest.approx(
        rouge_l("sort a list of numbers", "sort a list of numbers quickly")
    )
    assert index.max_score("translate to french") == 0.0


def test_instruction_filters_give_reasons():
    cfg = SelfInstructSection(min_words=3, max_words=10)
    pool = RougeIndex()
    pool.add("Explain the water cycle to a child.")
    assert instruction_problem("Hi there", cfg, pool) == "too_short"
    assert instruction_problem(" ".join(["word"] * 11), cfg, pool) == "too_long"
    assert instruction_problem("Plot the sales figures by month.", cfg, pool) == "blocked_keyword"
    assert instruction_problem("Explain the water cycle to children.", cfg, pool) == "too_similar"
    assert instruction_problem("- Name three rivers in Spain.", cfg, pool) == "bad_start"
    # "graphic" is not the keyword "graph": whole words only.
    assert instruction_problem("Name a graphic novel you like.", cfg, pool) is None


LONG = "Explain how vaccines train the immune system to fight infections."


def test_evolution_and_answer_filters():
    parent = "Explain how vaccines work."
    assert evolution_problem(parent, "  ", "deepen", 0.9) == "empty"
    assert evolution_problem(parent, "explain how vaccines work.", "deepen", 0.9) == "no_change"
    assert (
        evolution_problem(parent, "#Rewritten Prompt#: Explain how mRNA vaccines work.", "deepen", 0.9)
        == "copied_template"
    )
    assert evolution_problem(parent, "As an AI language model, I can't.", "deepen", 0.9) == "refusal"
    assert evolution_problem(LONG, LONG + " Please.", "deepen", 0.9) == "no_new_information"
    assert evolution_problem(LONG, LONG + " Please.", "breadth", 0.9) is None
    assert answer_problem("I'm sorry, I cannot help with that.", 3) == "answer_refusal"
    assert answer_problem("Yes.", 3) == "answer_too_short"
    assert answer_problem("Vaccines train the immune system.", 3) is None


def test_split_document_respects_headings_budget_and_overlap():
    para = "Sentence number {}. " * 1
    body = "\n\n".join(para.format(i) * 8 for i in range(6))  # six ~150-char paragraphs
    doc = f"# Intro\n\nShort intro.\n\n## Details\n\n{body}\n\n# End\n\nBye."
    chunks = split_document(doc, "notes/guide.md", max_chars=400, overlap_chars=60)
    assert [c.heading for c in chunks][0] == "Intro" and chunks[-1].heading == "End"
    assert all(len(c.text) <= 400 for c in chunks)
    details = [c for c in chunks if c.heading == "Details"]
    assert len(details) >= 3
    # Each later chunk starts with the tail of the previous one.
    for prev, nxt in zip(details, details[1:], strict=False):
        assert nxt.text.split("\n\n")[0] in prev.text
    # Nothing of the document is lost.
    assert all(f"Sentence number {i}." in " ".join(c.text for c in chunks) for i in range(6))
    assert len({c.id for c in chunks}) == len(chunks)
    assert chunks[0].id.startswith("guide-")


def test_split_document_cuts_giant_paragraphs():
    giant = " ".join(f"w{i}" for i in range(500))  # ~2,400 chars, no sentence end
    chunks = split_document(giant, "a.txt", max_chars=300, overlap_chars=0)
    assert all(len(c.text) <= 300 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == giant.split()


def test_templates_builtin_override_and_errors(tmp_path):
    ids = builtin_ids()
    assert {"self_instruct_generate", "evol_breadth", "doc_qa_generate", "doc_qa_judge"} <= set(ids)
    custom = tmp_path / "judge.txt"
    custom.write_text("Q: $question A: $reference B: $candidate. Same? yes/no")
    templates = load_templates({"doc_qa_judge": str(custom)})
    assert (
        templates["doc_qa_judge"].render(question="q", reference="r", candidate="c")
        == "Q: q A: r B: c. Same? yes/no"
    )
    assert templates["doc_qa_judge"].version != load_templates({})["doc_qa_judge"].version
    with pytest.raises(RecipeError, match="unknown template id; valid ids"):
        load_templates({"doc_qa_jugde": str(custom)})
    with pytest.raises(RecipeError, match="file not found"):
        load_templates({"doc_qa_judge": str(tmp_path / "missing.txt")})
    bad = tmp_path / "bad.txt"
    bad.write_text("Uses $nothing_known")
    with pytest.raises(RecipeError, match=r"uses \$nothing_known.*available: \$candidate"):
        load_templates({"doc_qa_judge": str(bad)})["doc_qa_judge"].render(
            question="q", reference="r", candidate="c"
        )


def test_every_builtin_template_renders_with_what_its_pipeline_passes():
    values = {
        "self_instruct_generate": {"examples": "1. x", "count": "3"},
        "self_instruct_classify": {"instruction": "x"},
        "self_instruct_instance_input": {"instruction": "x"},
        "self_instruct_instance_output": {"instruction": "x"},
        "evol_answer": {"prompt": "x"},
        "doc_qa_generate": {"persona": "p", "source": "s", "count": "2", "chunk": "c"},
        "doc_qa_closed_book": {"question": "q"},
        "doc_qa_judge": {"question": "q", "reference": "r", "candidate": "c"},
    }
    for op in ["add_constraints", "deepen", "concretize", "increase_reasoning", "breadth"]:
        values[f"evol_{op}"] = {"prompt": "x"}
    templates = load_templates({})
    assert set(values) == set(templates)
    for key, template in templates.items():
        assert "$" not in template.render(**values[key]), key


def test_seed_pool_is_varied_and_valid(tmp_path):
    tasks = load_seed_tasks(None)
    assert 40 <= len(tasks) <= 80
    assert len({t.id for t in tasks}) == len(tasks)
    assert 5 <= sum(t.is_classification for t in tasks) <= len(tasks) // 2
    assert all(t.output for t in tasks)
    # No two seeds are near-duplicates (the ROUGE filter would otherwise fight the pool itself).
    index = RougeIndex()
    for t in tasks:
        assert index.max_score(t.instruction) < 0.7, t.instruction
        index.add(t.instruction)
    assert SEED_TASKS.is_file()
    bad = tmp_path / "seeds.jsonl"
    bad.write_text('{"instruction": "ok"}\n{"input": "no instruction"}\n')
    with pytest.raises(DataError, match=r"seeds.jsonl:2: expected a JSON object with an 'instruction'"):
        load_seed_tasks(bad)


def test_request_cache_persists_and_is_thread_safe(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = RequestCache(path)
    keys = [
        request_key("m", [{"role": "user", "content": str(i)}], {"temperature": 0.7}, seed=i)
        for i in range(50)
    ]
    assert len(set(keys)) == 50
    threads = [
        threading.Thread(target=lambda k=k, i=i: cache.put(k, CachedResponse(f"answer {i}", i, 2 * i)))
        for i, k in enumerate(keys)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.close()
    reopened = RequestCache(path)
    assert len(reopened) == 50
    assert reopened.get(keys[7]) == CachedResponse("answer 7", 7, 14)
    # Any change to what determines the answer is a different key.
    base = request_key("m", [{"role": "user", "content": "0"}], {"temperature": 0.7}, seed=0)
    assert base == keys[0]
    assert base != request_key("m2", [{"role": "user", "content": "0"}], {"temperature": 0.7}, seed=0)
    assert base != request_key("m", [{"role": "user", "content": "0"}], {"temperature": 0.8}, seed=0)
    assert base != request_key("m", [{"role": "user", "content": "0"}], {"temperature": 0.7}, seed=1)


def test_recipe_synth_section_validates():
    recipe = recipe_from_dict(
        {"synth": {"pipeline": "doc_qa", "doc_qa": {"documents": ["a.md"], "judge": "teacher"}}}
    )
    assert recipe.synth.doc_qa.judge == "teacher"
    assert recipe.synth.teacher.concurrency == 4
    with pytest.raises(RecipeError, match="did you mean 'concurrency'"):
        recipe_from_dict({"synth": {"teacher": {"concurency": 2}}})
    with pytest.raises(RecipeError, match="synth.evol_instruct.operations.0"):
        recipe_from_dict({"synth": {"evol_instruct": {"operations": ["widen"]}}})
