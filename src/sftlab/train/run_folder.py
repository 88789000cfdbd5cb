"""The run folder around training: prepared before, checkpoints found for ``--resume``, TensorBoard beside the
metrics, and ``final/`` written atomically after. Split out of ``run.py``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from sftlab.export.folder import finish_folder
from sftlab.models.resolve import BASE_MODEL_FILE, RUN_FINAL
from sftlab.recipe.schema import Recipe
from sftlab.utils.atomic import write_json, write_text
from sftlab.utils.progress import console


def prepare_run_dir(recipe: Recipe, run_dir: Path, resume: bool, main: bool) -> None:
    if not main:
        return
    (run_dir / "train").mkdir(parents=True, exist_ok=True)
    if not (resume or recipe.training.resume):
        # Old checkpoints would otherwise be mistaken for this run's by a later --resume.
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        (run_dir / "train" / "metrics.jsonl").unlink(missing_ok=True)
    write_text(
        run_dir / "recipe.resolved.yaml", yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
    )


def tensorboard_callbacks(run_dir: Path) -> list:
    """A TensorBoard writer under ``train/tensorboard`` when tensorboard is installed (optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback
    except ImportError:
        return []
    if int(os.environ.get("RANK", "0")) != 0:
        return []
    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run_dir / "train" / "tensorboard")))]


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest *complete* checkpoint: a kill during a save leaves a folder without a readable trainer state."""
    import json

    folder = run_dir / "checkpoints"
    found = []
    for ckpt in folder.glob("checkpoint-*") if folder.is_dir() else []:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            found.append((int(ckpt.name.split("-")[-1]), ckpt))
        except (OSError, ValueError):
            continue
    if not found:
        if int(os.environ.get("RANK", "0")) == 0:
            console.print(
                f"[yellow]warning:[/] --resume: no complete checkpoint in {folder}; training from the start"
            )
        return None
    return str(max(found)[1])


def save_final(trainer, tokenizer, recipe: Recipe, run_dir: Path, pissa_init: Path | None) -> Path:
    """final/ = the model the Trainer ends with (the best checkpoint when eval ran), written atomically."""
    final = run_dir / RUN_FINAL
    tmp = run_dir / f".{RUN_FINAL}.tmp"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    if pissa_init is not None and main:
        trainer.model.save_pretrained(
            tmp, safe_serialization=True, path_initial_model_for_weight_conversion=str(pissa_init)
        )
    elif pissa_init is None:
        trainer.save_model(str(tmp))  # every process: FSDP/DeepSpeed gather the weights here
    if main:
        tokenizer.save_pretrained(tmp)
        write_json(tmp / BASE_MODEL_FILE, {"base_model": recipe.model.name})
        finish_folder(tmp, recipe.model.name, facts={"recipe": recipe.model_dump(mode="json")})
        for stray in ("training_args.bin",):  # pickled; nothing of ours reads it
            (tmp / stray).unlink(missing_ok=True)
        old = run_dir / f".{RUN_FINAL}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return final
