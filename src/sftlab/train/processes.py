"""How many processes train, and on what: one line printed before training.

``torchrun --nproc-per-node N`` (and ``accelerate launch --multi_gpu``) start N processes, which join one
``torch.distributed`` group (gloo on CPU, NCCL on GPUs). ``accelerate launch --cpu --num_processes N`` starts
*one* process: its CPU launcher only spreads over processes with ``--mpirun_hostfile``. A run launched that
way would silently train on one process, so the line says so, and what to run instead.
"""

from __future__ import annotations

import os
from pathlib import Path

CPU_HINT = "torchrun --nproc-per-node {n} -m sftlab.cli.main train RECIPE"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _device(world: int) -> str:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return f"{world} GPUs ({name})" if world > 1 else f"GPU ({name})"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "Apple GPU (mps)"
    return "CPU"


def _backend() -> str:
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return str(dist.get_backend())
    return "nccl" if torch.cuda.is_available() else "gloo"


def accelerate_requested_processes(parent_cmdline: list[str] | None = None) -> int | None:
    """``--num_processes`` (or the config file's) of the ``accelerate launch`` that started this process
    through its single-process launcher; None when this process was not started that way or it cannot tell."""
    if "ACCELERATE_USE_CPU" not in os.environ or "WORLD_SIZE" in os.environ:
        return None  # only accelerate's simple launcher sets the one without the other
    if parent_cmdline is None:
        try:
            raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
        except OSError:  # not Linux, or the parent is gone
            return None
        parent_cmdline = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    starts = [
        i for i, a in enumerate(parent_cmdline) if a == "launch" or a.endswith("accelerate.commands.launch")
    ]
    if not starts:
        return None
    from accelerate.commands.config.config_args import default_config_file, load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    try:
        args, _ = launch_command_parser().parse_known_args(parent_cmdline[starts[0] + 1 :])
        if args.num_processes is not None:
            return int(args.num_processes)
        # accelerate reads a config file when one is named, or its default one unless --cpu is given
        if args.config_file is not None or (os.path.isfile(default_config_file) and not args.cpu):
            return int(load_config_from_file(args.config_file).num_processes or 1)
    except (SystemExit, OSError, ValueError, TypeError, AttributeError):
        return None
    return None


def describe_processes() -> tuple[str, str | None]:
    """``(line, warning)``: e.g. ``"2 processes (torch.distributed, gloo) on CPU"``, and a warning when
    ``accelerate launch`` was asked for more processes than it started."""
    world = world_size()
    device = _device(world)
    if world > 1:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        machines = f", {local} per machine on {world // max(local, 1)} machines" if local < world else ""
        return f"{world} processes (torch.distributed, {_backend()}) on {device}{machines}", None
    line = f"1 process on {device}"
    asked = accelerate_requested_processes()
    if asked is None or asked <= 1:
        return line, None
    hint = CPU_HINT.format(n=asked)
    return line, (
        f"accelerate launch was asked for {asked} processes but started 1 (WORLD_SIZE is 1): its --cpu launcher "
        f"runs a single process; to train on {asked} CPU processes run `{hint}`"
    )
