"""What the machine can run, as data: the device, its compute capability, the optional packages installed.

Every GPU decision (attention kernel, fused kernels, optimizer, gradient checkpointing,
precision) is a pure function of a :class:`Device` and an :class:`Installed` set, so CI
tests each decision on a CPU by *describing* a GPU instead of needing one::

    >>> h100 = Device.cuda("NVIDIA H100 80GB HBM3", (9, 0), 80.0)
    >>> h100.bf16, Device.cuda("Tesla V100-SXM2-16GB", (7, 0), 16.0).bf16
    (True, False)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

AMPERE = (8, 0)
"""Compute capability of the first GPUs with bf16 tensor cores and flash-attention 2 support (A100)."""

OPTIONAL_PACKAGES = ("flash_attn", "liger_kernel", "bitsandbytes")
EXTRA_HINT = {
    "flash_attn": "pip install flash-attn --no-build-isolation",
    "liger_kernel": "pip install 'sftlab[gpu]'",
    "bitsandbytes": "pip install 'sftlab[gpu]'",
}
"""How to install each optional GPU package (flash-attn builds against the installed torch, so no extra)."""


@dataclass(frozen=True)
class Device:
    """The accelerator training runs on: ``cpu`` or one CUDA GPU (its name, compute capability, memory)."""

    kind: str = "cpu"
    name: str = "cpu"
    capability: tuple[int, int] | None = None
    memory_gib: float | None = None

    @classmethod
    def cuda(cls, name: str, capability: tuple[int, int], memory_gib: float | None = None) -> Device:
        return cls("cuda", name, tuple(capability), memory_gib)  # type: ignore[arg-type]

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def bf16(self) -> bool:
        """bf16 tensor cores: compute capability 8.0+ (A100, H100, RTX 30xx/40xx); not V100 or T4."""
        return self.is_cuda and self.capability is not None and self.capability >= AMPERE

    @property
    def flash_attention(self) -> bool:
        """flash-attention 2 kernels exist for compute capability 8.0+ only."""
        return self.bf16

    def describe(self) -> str:
        """``"NVIDIA H100 80GB HBM3 (sm 9.0, 80 GiB)"`` or ``"cpu"``."""
        if not self.is_cuda:
            return "cpu"
        cap = f"sm {self.capability[0]}.{self.capability[1]}" if self.capability else "sm ?"
        mem = f", {self.memory_gib:.0f} GiB" if self.memory_gib else ""
        return f"{self.name} ({cap}{mem})"


@dataclass(frozen=True)
class Installed:
    """Which optional GPU packages are importable (looked up without importing them)."""

    packages: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, *names: str) -> Installed:
        return cls(frozenset(names))

    def __contains__(self, name: str) -> bool:
        return name in self.packages


def detect_device() -> Device:
    """This process's device: the current CUDA GPU when one is visible, else the CPU."""
    import torch

    if not torch.cuda.is_available():
        return Device()
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return Device.cuda(props.name, (props.major, props.minor), props.total_memory / 1024**3)


def detect_installed() -> Installed:
    """The optional packages present, found by ``find_spec`` so that nothing heavy is imported."""
    found = []
    for name in OPTIONAL_PACKAGES:
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):
            continue
    return Installed(frozenset(found))
