"""Multi-process training on CPU: ``torchrun`` starts two DDP processes that train one model together, and
``sftlab train`` says how many processes it runs; ``accelerate launch --cpu --num_processes 2`` starts one,
and the run says so instead of silently training on one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sftlab.train.processes import accelerate_requested_processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SFTLAB_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_CPU"):
        env.pop(key, None)
    return env


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory, tokenizer):
    from sftlab.testing import save_tiny_model

    root = tmp_path_factory.mktemp("procs")
    model = save_tiny_model(root / "model", tokenizer)
    rows = [
        {"messages": [{"role": "user", "content": f"q {i}?"}, {"role": "assistant", "content": f"a {i}"}]}
        for i in range(16)
    ]
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    recipe = root / "recipe.yaml"
    recipe.write_text(
        f"output_dir: {root / 'run'}\nmodel: {{name: {model}}}\n"
        f"data:\n  sources:\n    - {{path: {root / 'data.jsonl'}, task: qa}}\n  eval_fraction: 0\n"
        "render: {max_length: 64}\ntraining: {max_steps: 2, batch_size: 2}\n"
    )
    return recipe, root / "run"


def test_torchrun_trains_on_two_cpu_processes_and_says_so(tiny_recipe):
    recipe, run = tiny_recipe
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "sftlab.cli.main", "train", str(recipe), "--skip-doctor"]  # fmt: skip
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout + done.stderr
    assert out.count("2 processes (torch.distributed, gloo) on CPU") == 1  # printed by rank 0 only
    assert out.count("render: 16 records = 16 trained") == 2  # each rank rendered the data
    summary = json.loads((run / "train" / "summary.json").read_text())
    # 2 steps × batch 2 × 2 processes = 8 of the 16 rows: half an epoch (one process would make a quarter)
    assert summary["processes"] == 2 and summary["steps"] == 2 and summary["epochs"] == pytest.approx(0.5)


def _accelerate_launch(tmp_path, *flags: str) -> str:
    """What a process started by ``accelerate launch FLAGS`` reports about itself."""
    script = tmp_path / "report.py"
    script.write_text(
        "from sftlab.train.processes import describe_processes\n"
        "import os\nprint(os.environ.get('WORLD_SIZE', '1'), *describe_processes(), sep='|')\n"
    )
    cmd = [str(Path(sys.executable).with_name("accelerate")), "launch", *flags, "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]  # fmt: skip
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_accelerate_cpu_launch_of_two_processes_is_called_out(tmp_path):
    world, line, warning = _accelerate_launch(tmp_path, "--cpu", "--num_processes", "2").split("|")
    assert world == "1" and line == "1 process on CPU"
    assert "asked for 2 processes but started 1" in warning
    assert "torchrun --nproc-per-node 2 -m sftlab.cli.main train" in warning
    # One process asked for, one started: nothing to say.
    assert _accelerate_launch(tmp_path, "--cpu", "--num_processes", "1").split("|") == [
        "1",
        "1 process on CPU",
        "None",
    ]


def test_requested_processes_come_from_the_flag_or_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    launch = ["python", "accelerate", "launch"]
    assert accelerate_requested_processes([*launch, "--cpu", "--num-processes", "3", "-m", "x", "train"]) == 3
    config = tmp_path / "cpu.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_processes: 4\n")
    assert accelerate_requested_processes([*launch, "--config_file", str(config), "train.py"]) == 4
    assert accelerate_requested_processes(["python", "train.py"]) is None  # not started by accelerate
    monkeypatch.setenv("WORLD_SIZE", "2")  # a torchrun/--multi_gpu process knows its world size
    assert accelerate_requested_processes([*launch, "--cpu", "--num_processes", "3", "train.py"]) is None
