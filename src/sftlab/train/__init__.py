"""Training: methods (full/freeze/LoRA/QLoRA/prompt), exact loss normalisation, eval and early stopping,
data mixing, EWC, resume, multi-process through accelerate, and the pre-flight ``doctor``."""

from sftlab.train.run import TrainResult, fit, run_training

__all__ = ["TrainResult", "fit", "run_training"]
