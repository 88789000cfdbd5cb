"""``sftlab data convert`` and ``sftlab data inspect`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

from sftlab.cli.main import main

DATA = Path(__file__).parent / "data"


def test_convert_prints_accounting_and_dropped_fields(tmp_path, capsys):
    out = tmp_path / "tools.alpaca.jsonl"
    assert main(["data", "convert", str(DATA / "messages_tools.jsonl"), str(out), "--to", "alpaca"]) == 0
    text = capsys.readouterr().out
    assert "in 3 = written 1 + rejected 2 (cannot be alpaca: tool_calls 2)" in text
    assert len(out.read_text().splitlines()) == 1
    rejected = [json.loads(x) for x in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected] == ["cannot_write_alpaca"] * 2
    assert all(r["record"]["turns"] for r in rejected)  # the whole record, to convert elsewhere
    assert (
        main(
            [
                "data",
                "convert",
                str(DATA / "messages_tools.jsonl"),
                str(tmp_path / "s.jsonl"),
                "--to",
                "sharegpt",
            ]
        )
        == 0
    )
    assert "dropped reasoning from 1 records" in capsys.readouterr().out


def test_convert_skip_writes_rejects_and_fail_exits_1_with_one_line(tmp_path, capsys):
    src = DATA / "broken" / "messages_bad.jsonl"
    out, rejects = tmp_path / "ok.parquet", tmp_path / "bad.jsonl"
    code = main(
        [
            "data",
            "convert",
            str(src),
            str(out),
            "--to",
            "sftlab",
            "--on-error",
            "skip",
            "--rejects",
            str(rejects),
        ]
    )
    assert code == 0
    assert "in 12 = written 1 + rejected 11 (read: " in capsys.readouterr().out
    assert len(rejects.read_text().splitlines()) == 11 and out.exists()
    code = main(["data", "convert", str(src), str(tmp_path / "x.jsonl"), "--to", "messages"])
    err = capsys.readouterr().err
    assert (
        code == 1 and err.count("\n") == 1 and f"{src}:2: assistant_first" in err and "Traceback" not in err
    )
    assert not (tmp_path / "x.jsonl").exists()  # nothing half-written


def test_convert_with_mapping_and_explicit_from(tmp_path, capsys):
    src = tmp_path / "qa.csv"
    src.write_text("question,answer\nWhat is 2+2?,4\n")
    out = tmp_path / "qa.jsonl"
    assert (
        main(
            [
                "data",
                "convert",
                str(src),
                str(out),
                "--to",
                "messages",
                "--from",
                "alpaca",
                "--map",
                "prompt=question",
                "--map",
                "response=answer",
            ]
        )
        == 0
    )
    row = json.loads(out.read_text())
    assert row["messages"] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    assert main(["data", "convert", str(src), str(out), "--to", "klingon"]) == 1
    assert "unknown data format 'klingon'" in capsys.readouterr().err


def test_inspect_json_histograms_and_samples(capsys):
    assert main(["data", "inspect", str(DATA / "messages_tools.jsonl"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "messages" and info["records"] == 3
    assert info["turns_histogram"] == {"2": 1, "4": 1, "5": 1}
    assert info["roles"] == {"user": 3, "assistant": 5, "tool": 3}
    assert info["with_tool_calls"] == 2 and info["with_reasoning"] == 1 and info["with_tools"] == 1
    assert info["chars"]["max"] >= info["chars"]["p50"] > 0 and len(info["samples"]) == 3


def test_inspect_text_with_tokenizer(tiny_model_dir, capsys):
    assert main(["data", "inspect", str(DATA / "sharegpt_zh.jsonl"), "--tokenizer", str(tiny_model_dir)]) == 0
    text = capsys.readouterr().out
    assert "format sharegpt, 3 records" in text and "tokens: p50" in text and "--- sample 3" in text
    assert main(["data", "inspect", str(DATA / "nope.jsonl")]) == 1


def test_convert_that_writes_nothing_is_an_error_and_keeps_the_old_file(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    out.write_text("old\n")
    assert main(["data", "convert", str(DATA / "messages_tools.jsonl"), str(out), "--to", "text"]) == 1
    err = capsys.readouterr().err
    assert "nothing to write as text" in err and "the file was not written" in err
    assert out.read_text() == "old\n"
    assert len(Path(f"{out}.rejects.jsonl").read_text().splitlines()) == 3
