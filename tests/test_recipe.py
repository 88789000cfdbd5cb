"""The recipe: defaults, overrides, and errors that name the key, the line and the fix."""

from __future__ import annotations

import json

import pytest

from sftlab.cli.main import main
from sftlab.errors import RecipeError
from sftlab.recipe import load_recipe, parse_overrides


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_defaults_and_overrides(tmp_path):
    path = write(tmp_path, "name: demo\ntraining:\n  method: lora\n  epochs: 3\n")
    recipe = load_recipe(
        path, ["training.lr=2e-4", "render.packing=false", "training.lora.target_modules=[q_proj, v_proj]"]
    )
    assert recipe.name == "demo"
    assert recipe.training.epochs == 3
    assert recipe.training.lr == pytest.approx(2e-4)
    assert recipe.render.packing is False
    assert recipe.training.lora.target_modules == ["q_proj", "v_proj"]
    assert recipe.model.name == "smollm2-135m-instruct"


def test_misspelled_key_names_line_and_suggestion(tmp_path):
    path = write(tmp_path, "name: demo\ntraining:\n  method: lora\n  lrr: 0.001\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert f"{path}:4" in message
    assert "training.lrr" in message
    assert "did you mean 'lr'" in message


def test_all_problems_reported_at_once(tmp_path):
    path = write(tmp_path, "trainin:\n  lr: 1\nrender:\n  max_length: -3\n  packng: true\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    problems = info.value.problems
    assert len(problems) == 3
    assert any("trainin" in p and "did you mean 'training'" in p for p in problems)
    assert any("render.max_length" in p and "greater than or equal to 8" in p for p in problems)
    assert any("render.packng" in p and "did you mean 'packing'" in p for p in problems)


def test_nested_list_key_suggestion(tmp_path):
    path = write(tmp_path, "data:\n  sources:\n    - path: a.jsonl\n      formt: alpaca\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert "data.sources.0.formt" in str(info.value)
    assert "did you mean 'format'" in str(info.value)
    assert f"{path}:4" in str(info.value)


def test_override_errors_name_the_override(tmp_path):
    path = write(tmp_path, "name: demo\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["training.epochz=2"])
    assert "override: training.epochz: unknown key; did you mean 'epochs'?" in str(info.value)
    with pytest.raises(RecipeError):
        parse_overrides(["no-equals-sign"])


def test_cli_misspelled_key_exit_code_2_no_traceback(tmp_path, capsys):
    path = write(tmp_path, "trainng:\n  lr: 1e-4\n")
    code = main(["recipe", "show", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert "did you mean 'training'" in captured.err
    assert "Traceback" not in captured.err


def test_cli_show_resolves_overrides(tmp_path, capsys):
    path = write(tmp_path, "name: demo\n")
    assert main(["recipe", "show", str(path), "training.epochs=1", "--json"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["training"]["epochs"] == 1
    assert resolved["model"]["trust_remote_code"] is False


def test_cli_schema_is_json(capsys):
    assert main(["recipe", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "training" in schema["properties"]


def test_invalid_yaml_is_one_line(tmp_path, capsys):
    path = write(tmp_path, "name: [unclosed\n")
    assert main(["recipe", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid YAML" in err and "Traceback" not in err


def test_an_error_inside_an_overridden_block_names_the_override(tmp_path):
    path = write(tmp_path, "name: demo\ntraining:\n  lr: 1e-4\n  epochs: 1\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["training={lr: 0, epochs: -1}"])
    text = str(info.value)
    assert "override training: training.epochs" in text and "(got -1)" in text
    assert f"{path}:4" not in text  # line 4 says epochs: 1; the file is not to blame


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    path = write(tmp_path, "name: a\ntraining:\n  lr: 1e-4\n  lr: 2e-4\nname: b\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    text = str(info.value)
    assert f"{path}:4: training.lr: duplicate key (first at line 3)" in text
    assert f"{path}:5: name: duplicate key (first at line 1)" in text


def test_alias_bomb_is_refused_at_once(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = write(tmp_path, "\n".join([*lines, "name: *a8"]) + "\n")
    with pytest.raises(RecipeError, match="aliases expand to more than 100,000 values"):
        load_recipe(path)


def test_small_aliases_still_work(tmp_path):
    path = write(tmp_path, "common: &lr {lr: 3.0e-4}\n")
    with pytest.raises(RecipeError, match="common: unknown key"):
        load_recipe(path)  # aliases parse; the unknown top-level key is the only problem
    path = write(tmp_path, "training: &t {lr: 3.0e-4}\n")
    assert load_recipe(path).training.lr == 3.0e-4


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("name: x\n".encode("utf-16"), "not UTF-8 text (it looks like UTF-16)"),
        (bytes(range(256)), "a binary file"),
        (b"name: caf\xe9\n", "not UTF-8 text at byte 9"),
    ],
)
def test_recipe_that_is_not_utf8_text(tmp_path, content, says):
    path = tmp_path / "r.yaml"
    path.write_bytes(content)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert says in str(info.value)


def test_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes("\ufeffname: bom\n".encode())
    assert load_recipe(path).name == "bom"


def test_recipe_check_names_missing_data_files(tmp_path, capsys):
    from sftlab.cli.main import main

    (tmp_path / "a.jsonl").write_text('{"instruction": "q", "output": "a"}\n')
    path = write(
        tmp_path,
        f"data:\n  sources:\n    - path: {tmp_path / 'a.jsonl'}\n    - path: {tmp_path / 'gone.jsonl'}\n",
    )
    assert main(["recipe", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "data.sources.1.path" in err and "gone.jsonl: file not found" in err
    assert "sources.0" not in err


def test_run_refuses_until_before_from(tmp_path, capsys):
    from sftlab.cli.main import main

    path = write(tmp_path, "name: x\n")
    assert main(["run", str(path), "--from", "train", "--until", "curate"]) == 1
    assert "'curate' comes before 'train'" in capsys.readouterr().err
