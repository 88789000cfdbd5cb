"""bench/gpu_check.sh --dry-run: the GPU check's CPU-checkable parts run in CI (about a minute).

Argument parsing, the benchmark model's config, the path sftlab picks on a described H100, real
tiny sftlab runs (full and LoRA) and the JSON and Markdown writers over their results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-dry")
    env = {**os.environ, "PYTHON": sys.executable, "SFTLAB_PROGRESS": "0"}
    cmd = ["bash", str(BENCH / "gpu_check.sh"), "--dry-run", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_dry_run_writes_the_json_and_the_table(dry_run):
    report = json.loads((dry_run / "gpu_bench.json").read_text())
    assert report["dry_run"] is True and report["device"] == "cpu"
    ours = {r["method"]: r for r in report["rows"] if r["row"] == "sftlab"}
    assert set(ours) == {"full", "lora"}
    for r in ours.values():
        assert r["tokens_per_s"] > 0 and r["final_loss"] > 0 and r["mfu"] is None  # no GPU peak on a CPU
        assert r["setup"]["attention"] == "sdpa" and r["setup"]["kernels"] == "none"
    assert [e["method"] for e in report["estimate"]] == ["full", "lora", "qlora"]
    assert all(e["predicted_bytes"] > 0 and e["measured_bytes"] is None for e in report["estimate"])
    assert "attention flash_attention_2 (packed rows: padding-free, flash-attn varlen)" in report["plan"][1]
    assert "attention flex_attention" in report["plan"][2]
    table = (dry_run / "gpu_bench.md").read_text()
    assert table.startswith("**Dry run on CPU (tiny model): checks the script, not a GPU figure.**")
    assert "| full | sftlab |" in table and "| lora | sftlab |" in table and "not measured" in table


def test_unknown_option_is_one_line_and_exit_2():
    proc = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--fast"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--fast" in proc.stderr


def test_benchmark_model_is_half_a_billion_parameters_and_flops_count_it(tokenizer):
    sys.path.insert(0, str(BENCH))
    try:
        import gpu_bench
    finally:
        sys.path.remove(str(BENCH))
    from sftlab.estimate import count_params

    config = gpu_bench.llama_config("0.5b", tokenizer)
    assert 0.45e9 < count_params(config).total < 0.55e9
    per_token = gpu_bench.flops_per_token(config, "full", [2048])
    assert per_token == pytest.approx(6 * (count_params(config).total) + 6 * 16 * 1536 * 2048, rel=0.01)
    assert gpu_bench.flops_per_token(config, "lora", [2048]) < per_token
    assert gpu_bench.bf16_peak("NVIDIA H100 80GB HBM3") == 989e12 and gpu_bench.bf16_peak(None) is None
    with pytest.raises(SystemExit):
        gpu_bench.arguments(["--steps", "1"])
