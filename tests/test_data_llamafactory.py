"""LLaMA-Factory migration: its ``data/`` folder, every ``dataset_info.json`` key, the same keys in a recipe.

The fixtures in ``tests/data/llamafactory/`` follow LLaMA-Factory's demo data layout:
an Alpaca demo, ``identity.json`` with ``{{name}}``/``{{author}}``, glaive-style
tool calls (English with ASCII-escaped JSON texts, Chinese without), ShareGPT
with custom tags, ShareGPT with the default tags written out, OpenAI-style
messages read as ShareGPT with role/content tags, a pre-training JSONL, and the
hub, preference, multimodal and ``.txt`` entries sftlab refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlab.cli.main import main
from sftlab.data.io import read_records, read_source
from sftlab.data.record import TextRecord, ToolCall
from sftlab.errors import DataError, RecipeError
from sftlab.recipe import load_recipe
from sftlab.recipe.sections.data import SourceSection

LF = Path(__file__).parent / "data" / "llamafactory"
INFO = LF / "dataset_info.json"


def read(dataset, path=INFO, **kw):
    return list(read_source(SourceSection(path=str(path), dataset=dataset, **kw)))


def recipe(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return load_recipe(path)


def test_recipe_reads_several_datasets_each_as_its_own_named_source(tmp_path):
    r = recipe(
        tmp_path,
        f"data:\n  sources:\n    - path: {INFO}\n      dataset: [alpaca_en_demo, glaive_toolcall_en_demo]\n"
        f"      weight: 2\n    - path: {LF}\n      dataset: identity\n",
    )
    sources = r.data.sources
    assert [(s.name, s.dataset, s.weight) for s in sources] == [
        ("alpaca_en_demo", "alpaca_en_demo", 2.0),
        ("glaive_toolcall_en_demo", "glaive_toolcall_en_demo", 2.0),
        ("identity", "identity", 1.0),
    ]
    streams = [read_source(s) for s in sources]
    records = [list(s) for s in streams]
    assert [len(x) for x in records] == [12, 6, 7]
    assert [s.format for s in streams] == ["alpaca", "sharegpt", "alpaca"]
    assert [{r.meta.source for r in x} for x in records] == [
        {"alpaca_en_demo"},
        {"glaive_toolcall_en_demo"},
        {"identity"},
    ]
    assert records[0][0].meta.id == "alpaca_en_demo-1"  # ids from the data file, not dataset_info
    with pytest.raises(RecipeError, match="one source per dataset"):
        recipe(tmp_path, f"data:\n  sources:\n    - path: {INFO}\n      dataset: [a, b]\n      name: x\n")


def test_each_entry_shape_reads_as_llamafactory_means_it():
    glaive = read("glaive_toolcall_en_demo")
    assert glaive[0].turns[1].tool_calls == [ToolCall("calculate_bmi", {"weight": 70, "height": 1.75})]
    assert glaive[0].turns[2].role == "tool" and glaive[0].tools[0]["name"] == "calculate_bmi"
    assert glaive[2].tools is None and len(glaive[3].turns) == 8
    zh = read("glaive_toolcall_zh_demo")[2]
    assert zh.turns[1].content == "我来分别查一下。" and [
        c.arguments["city"] for c in zh.turns[1].tool_calls
    ] == [
        "上海",
        "广州",
    ]
    tutor = read("tutor_custom_tags")
    assert tutor[0].system == "You are a patient maths tutor."
    assert [t.role for t in tutor[0].turns] == ["user", "assistant", "user", "assistant"]
    lima = read("lima_style")
    assert lima[0].system == "You are a careful science writer." and len(lima[1].turns) == 4
    openai = read("open_thoughts_style")
    assert openai[0].system.startswith("You are a helpful") and openai[1].turns[3].content == "Six."
    c4 = read("c4_demo")  # LLaMA-Factory's pre-training entry: columns {prompt: text}
    assert all(isinstance(r, TextRecord) for r in c4) and c4[2].text.endswith("flamboyance.")
    sample = read("alpaca_en_demo_5")  # num_samples: the first 5; file_sha1 ignored
    assert (
        len(sample) == 5
        and sample[1].turns[0].content
        == "Transform the following sentence using a synonym.\nThe car sped quickly."
    )


@pytest.mark.parametrize(
    ("dataset", "needles"),
    [
        ("alpaca_en", ["alpaca_en", "hf_hub_url", "file_name", "path: llamafactory/alpaca_en"]),
        ("dpo_en_demo", ["dpo_en_demo", "ranking: true", "preference"]),
        ("mllm_demo", ["mllm_demo", "columns.images", "multimodal"]),
        ("wiki_demo", ["wiki_demo", "one line per record", "JSONL"]),
        ("alpaca_demo", ["no dataset 'alpaca_demo'", "did you mean 'alpaca_en_demo'"]),
    ],
)
def test_what_sftlab_cannot_read_is_refused_in_one_line_naming_dataset_and_key(dataset, needles):
    with pytest.raises(DataError) as err:
        read(dataset)
    message = str(err.value)
    assert "\n" not in message and str(INFO) in message, message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    ("entry", "needles"),
    [
        (
            {"file_name": "a.json", "colums": {"prompt": "q"}},
            ["unknown key 'colums'", "did you mean 'columns'"],
        ),
        ({"file_name": "a.json", "columns": {"promt": "q"}}, ["columns", "unknown key 'promt'", "'prompt'"]),
        ({"file_name": "a.json", "columns": {"role_tag": "r"}}, ["columns.role_tag: belongs under tags"]),
        ({"file_name": "a.json", "tags": {"user_tag": 3}}, ["tags.user_tag: expected a non-empty string"]),
        ({"file_name": "a.json", "formatting": "openai"}, ["formatting: expected alpaca or sharegpt"]),
        ({"file_name": "a.json", "num_samples": 0}, ["num_samples: expected a positive whole number"]),
        ({"file_name": "a.json", "split": "test"}, ["split: test: a plain file has only the train split"]),
        ({"file_name": "a.json", "subset": "en"}, ["subset: used only with hub datasets"]),
        ({"script_url": "my_loader"}, ["script_url: loading scripts are not run"]),
        ({"ms_hub_url": "AI-ModelScope/x"}, ["ms_hub_url: ModelScope"]),
        ({"formatting": "sharegpt"}, ["no file_name"]),
        ({"file_name": "missing.json"}, ["file_name:", "missing.json not found"]),
    ],
)
def test_bad_entries_name_file_dataset_key_and_fix(tmp_path, entry, needles):
    (tmp_path / "a.json").write_text('[{"instruction": "q", "output": "a"}]')
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": entry}))
    with pytest.raises(DataError) as err:
        read("mine", path=tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'dataset_info.json'}: mine: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_split_of_a_saved_hf_dataset_entry(tmp_path):
    import datasets

    rows = lambda q: [{"instruction": q, "input": "", "output": "ok"}]  # noqa: E731
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows("t")), "validation": datasets.Dataset.from_list(rows("v"))}
    ).save_to_disk(str(tmp_path / "hf"))
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"held": {"file_name": "hf", "split": "validation"}})
    )
    assert [r.turns[0].content for r in read("held", path=tmp_path)] == ["v"]
    assert [r.turns[0].content for r in read("held", path=tmp_path, split="train")] == ["t"]  # ours wins


def test_recipe_source_written_as_a_llamafactory_entry(tmp_path):
    data = LF / "tutor_custom_tags.json"
    r = recipe(
        tmp_path,
        f"""data:
  sources:
    - file_name: {data}
      formatting: sharegpt
      columns:
        messages: dialog
      tags:
        role_tag: speaker
        content_tag: text
        user_tag: USER
        assistant_tag: ASSISTANT
        system_tag: SYSTEM
      num_samples: 2
    - path: {data}
      mapping:
        formatting: sharegpt
        columns: {{messages: dialog}}
        tags: {{role_tag: speaker, content_tag: text, user_tag: USER, assistant_tag: ASSISTANT, system_tag: SYSTEM}}
""",
    )
    a, b = (list(read_source(s)) for s in r.data.sources)
    assert r.data.sources[0].format == "sharegpt" and r.data.sources[0].limit == 2
    assert len(a) == 2 and len(b) == 3 and a[0].to_dict() == b[0].to_dict()
    assert a[0].system == "You are a patient maths tutor." and a[1].turns[1].content == "No: 91 = 7 × 13."


def test_recipe_refuses_what_it_cannot_honour_naming_the_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "data:\n  sources:\n"
        "    - path: a.json\n      hf_hub_url: llamafactory/alpaca_en\n"
        "    - file_name: a.json\n      ranking: true\n"
        "    - path: a.json\n      file_name: b.json\n"
        "    - path: a.json\n      mapping: {prompt: q, images: imgs}\n"
        "    - path: a.json\n      formatting: sharegpt\n      format: messages\n"
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    problems = err.value.problems
    assert len(problems) == 5
    assert problems[0].startswith(f"{path}:3: data.sources.0: hf_hub_url: sftlab does not download")
    assert "ranking: true is preference data" in problems[1]
    assert "file_name: LLaMA-Factory's name for path; give only one" in problems[2]
    assert "data.sources.3.mapping: images: multimodal inputs are not supported" in problems[3]
    assert "formatting: sharegpt contradicts format: messages" in problems[4]


def test_a_dataset_info_without_a_dataset_name_says_how_to_pick_one(tmp_path):
    with pytest.raises(
        DataError, match=r"dataset_info.json; name the entry to read with dataset: NAME.*identity"
    ):
        list(read_source(SourceSection(path=str(INFO))))
    with pytest.raises(DataError, match="LLaMA-Factory dataset_info.json .*--dataset NAME"):
        list(read_records(INFO))
    with pytest.raises(DataError, match="a LLaMA-Factory data folder; name the dataset"):
        list(read_records(LF))
    with pytest.raises(DataError, match="needs path to be a LLaMA-Factory dataset_info.json"):
        read("identity", path=LF / "identity.json")


def test_substitute_fills_identity_variables_and_leaves_unknown_ones(tmp_path):
    filled = read("identity", substitute={"name": "Ledger", "author": "Acme"})
    answers = [r.turns[-1].content for r in filled]
    assert answers[0] == "Hello! I am Ledger, an AI assistant developed by Acme. How can I assist you today?"
    assert answers[3] == "You may refer to me as Ledger, an AI assistant developed by Acme."  # {{ name }}
    assert not any("{{" in a for a in answers)
    partial = read("identity", substitute={"name": "Ledger"})
    assert (
        partial[4].turns[-1].content == "As an AI assistant developed by {{author}}, I got the name Ledger."
    )
    untouched = read("identity")
    assert untouched[0].turns[-1].content.count("{{") == 2
    r = recipe(
        tmp_path,
        f"data:\n  sources:\n    - path: {INFO}\n      dataset: identity\n      substitute: {{name: Ledger}}\n",
    )
    assert "I am Ledger," in list(read_source(r.data.sources[0]))[2].turns[-1].content


def test_cli_convert_and_inspect_take_a_dataset_entry(tmp_path, capsys):
    out = tmp_path / "glaive.messages.jsonl"
    code = main(
        ["data", "convert", str(INFO), str(out), "--to", "messages", "--dataset", "glaive_toolcall_en_demo"]
    )
    assert code == 0 and "in 6 = written 6 + rejected 0" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["messages"][1]["tool_calls"][0]["function"]["name"] == "calculate_bmi"
    assert main(["data", "inspect", str(LF), "--dataset", "tutor_custom_tags", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "sharegpt" and info["records"] == 3 and info["with_system"] == 1
    assert main(["data", "convert", str(INFO), str(out), "--to", "messages"]) == 1
    assert "--dataset NAME" in capsys.readouterr().err
    assert main(["data", "inspect", str(INFO), "--dataset", "dpo_en_demo"]) == 1
    assert "ranking: true" in capsys.readouterr().err


def test_llamafactory_mapping_nested_as_in_dataset_info_validates_in_the_recipe(tmp_path):
    r = recipe(
        tmp_path,
        "data:\n  sources:\n    - path: x.jsonl\n      mapping:\n        formatting: sharegpt\n"
        "        columns: {messages: dialog}\n        tags: {role_tag: speaker}\n",
    )
    assert r.data.sources[0].mapping["columns"] == {"messages": "dialog"}


def test_source_files_name_the_data_file_behind_an_entry_for_fingerprints():
    from sftlab.data.llamafactory import source_files

    assert source_files(SourceSection(path=str(LF), dataset="identity")) == [
        str(INFO),
        str(LF / "identity.json"),
    ]
    plain = str(LF / "c4_demo.jsonl")
    assert source_files(SourceSection(path=plain)) == [plain]
