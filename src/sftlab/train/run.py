"""``run_training``: records in, run folder out. Reads top-down: set up → data → model → train → save.

Run folder::

    run_dir/
      recipe.resolved.yaml
      checkpoints/checkpoint-N/     Trainer checkpoints (resume with --resume)
      final/                        best (or last) adapter / model + tokenizer + chat template + sftlab_base.json
      train/metrics.jsonl           one line per log and per evaluation
      train/summary.json            what was trained, how it went, which checkpoint final/ is and why
      train/loss_curve.png
      train/tensorboard/            only when tensorboard is installed
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.data.record import Record
from sftlab.errors import SftlabError
from sftlab.recipe.schema import Recipe
from sftlab.train import callbacks as cb
from sftlab.train.curves import plot_loss_curve
from sftlab.train.data import PackedDataset, SampleDataset, eval_collator, group_of, tokenize, train_collator
from sftlab.train.defaults import eval_interval, learning_rate
from sftlab.train.methods import prepare_model, trainable_summary
from sftlab.train.mixing import plan_mixture
from sftlab.train.model_load import build_run_ewc, load_training_model, save_pissa_init
from sftlab.train.precision import resolve_precision
from sftlab.train.processes import describe_processes, world_size
from sftlab.train.run_folder import last_checkpoint, prepare_run_dir, save_final, tensorboard_callbacks
from sftlab.train.setup import apply_setup, plan_setup
from sftlab.train.summary import build_summary, render_line
from sftlab.utils.atomic import write_json
from sftlab.utils.progress import console


@dataclass
class TrainResult:
    """What a training run produced (also written to ``train/summary.json``)."""

    final_dir: Path
    best_checkpoint: str | None
    train_loss: float | None
    eval_loss: float | None
    steps: int
    tokens_per_second: float | None
    metrics_path: Path
    summary: dict[str, Any] = field(default_factory=dict)


def run_training(
    recipe: Recipe,
    train_records: Sequence[Record],
    eval_records: Sequence[Record],
    run_dir: Path,
    *,
    resume: bool = False,
    general_records: Sequence[Record] | None = None,
    callbacks: list | None = None,
) -> TrainResult:
    """Render the records with the recipe's template and train; see :func:`fit` for the rest."""
    from sftlab.models import load_tokenizer, resolve_model
    from sftlab.models.load import no_weights_message
    from sftlab.render import resolve_template

    resolved = resolve_model(recipe.model.name, revision=recipe.model.revision)
    if resolved.kind == "tokenizer":  # before minutes of rendering, not after
        raise SftlabError(no_weights_message(resolved))
    tokenizer = load_tokenizer(
        resolved, revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
    )
    stage = infer_stage(recipe, train_records)
    render_cfg = recipe.render
    if stage == "sft":
        resolve_template(tokenizer, render_cfg.template, render_cfg.template_kwargs)
    else:  # continued pre-training: conversations (if any) are trained on every token too
        render_cfg = render_cfg.model_copy(update={"train_on": "everything"})
        if getattr(tokenizer, "chat_template", None):
            resolve_template(tokenizer, render_cfg.template, render_cfg.template_kwargs)
    cache = Path(run_dir) / "cache" / "tokens"
    train, stats = tokenize(train_records, tokenizer, render_cfg, cache)
    evals, _ = tokenize(eval_records, tokenizer, render_cfg, cache)
    general, _ = tokenize(general_records or [], tokenizer, render_cfg, cache)
    console.print(render_line(stats), markup=False, highlight=False)
    if not train:
        raise SftlabError(
            "no training sample has trained tokens after rendering; check render.train_on and render.max_length"
        )
    return fit(
        recipe,
        tokenizer,
        train,
        evals,
        run_dir,
        resume=resume,
        general=general,
        stage=stage,
        render_stats=stats,
        callbacks=callbacks,
    )


def infer_stage(recipe: Recipe, records: Sequence[Record]) -> str:
    """``pretrain`` when asked, or when every record is plain text; else ``sft``."""
    if recipe.training.stage != "auto":
        return recipe.training.stage
    return "pretrain" if records and all(r.kind == "text" for r in records) else "sft"


def fit(
    recipe: Recipe,
    tokenizer,
    train: list[dict],
    evals: list[dict],
    run_dir: Path,
    *,
    resume: bool = False,
    general: list[dict] | None = None,
    stage: str = "sft",
    render_stats: dict | None = None,
    callbacks: list | None = None,
) -> TrainResult:
    """Train on rendered samples (``sftlab.train.data.sample_dict`` form) and write the run folder."""
    from transformers import set_seed

    t = recipe.training
    run_dir = Path(run_dir)
    main = int(os.environ.get("RANK", "0")) == 0
    set_seed(recipe.seed)
    prepare_run_dir(recipe, run_dir, resume, main)

    # ---- data
    plan = plan_mixture(train, _source_weights(recipe), t.task_upsample, recipe.seed)
    if main:
        console.print(f"[bold]sampling plan[/] (per epoch, {stage}):\n{plan.table()}")
    groups = sorted({group_of(s) for s in evals})
    packing = recipe.render.packing or stage == "pretrain"
    if t.method in ("prompt_tuning", "p_tuning"):
        packing = False  # a soft prompt is prepended once per row, so rows must be single samples
    if packing:
        train_ds = PackedDataset(train, plan.indices, recipe.render.max_length)
        if main:
            console.print(f"packed {len(plan.indices):,} samples into {train_ds.describe()}")
    else:
        train_ds = SampleDataset(train, plan.indices)
    eval_ds = SampleDataset(evals, groups=groups) if evals else None

    # ---- model
    precision = resolve_precision(t.precision)
    model = load_training_model(recipe, precision)
    setup = plan_setup(recipe, packing=packing, n_params=model.num_parameters())
    model = apply_setup(model, setup)
    model = prepare_model(model, t, tokenizer, gradient_checkpointing=setup.gradient_checkpointing)
    pissa_init = (
        save_pissa_init(model, run_dir) if t.method in ("lora", "qlora") and t.lora.init == "pissa" else None
    )
    n_train, n_all = trainable_summary(model)
    collator = train_collator(
        tokenizer, recipe.render, packing, getattr(model.config, "_attn_implementation", None)
    )
    ewc = build_run_ewc(recipe, model, general or [], collator) if t.ewc.lam > 0 else None

    # ---- train
    from transformers import PrinterCallback

    from sftlab.train.trainer import SftTrainer

    world = world_size()
    steps_per_epoch = math.ceil(len(train_ds) / (t.batch_size * t.grad_accum * world))
    total_steps = t.max_steps or max(1, math.ceil(steps_per_epoch * t.epochs))
    eval_every = eval_interval(total_steps, t.eval_steps)
    args = _training_arguments(recipe, run_dir, precision, eval_every, bool(evals), packing)
    early = (
        cb.EarlyStopping(t.early_stopping_patience, t.early_stopping_threshold)
        if t.early_stopping_patience and evals
        else None
    )
    overfit = cb.OverfitWatch()
    metrics_path = run_dir / "train" / "metrics.jsonl"
    cbs = [
        cb.MetricsJsonl(metrics_path),
        cb.RichProgress(),
        overfit,
        *([early] if early else []),
        *(callbacks or []),
    ]
    cbs += tensorboard_callbacks(run_dir) if "tensorboard" in t.report_to else []
    trainer = SftTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=cbs,
        eval_groups=groups,
        loraplus_lr_ratio=t.lora.loraplus_lr_ratio if t.method in ("lora", "qlora") else None,
        ewc=ewc,
        eval_data_collator=eval_collator(tokenizer),
        loss_kernel=setup.kernels,
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; our bar and metrics.jsonl replace it
    checkpoint = last_checkpoint(run_dir) if (resume or t.resume) else None
    if main:
        procs, launch_warning = describe_processes()
        console.print(procs, markup=False, highlight=False)
        if launch_warning:
            console.print(f"[yellow]warning:[/] {launch_warning}", highlight=False)
        console.print(
            f"[bold]training[/] {t.method} on {recipe.model.name}: {n_train:,} of {n_all:,} parameters trainable "
            f"({100 * n_train / max(1, n_all):.2f}%), {total_steps} steps, lr {learning_rate(t.method, t.lr):g}, "
            f"{precision}" + (f", resuming from {checkpoint}" if checkpoint else "")
        )
        console.print(setup.describe(), markup=False, highlight=False)
    started = time.time()
    with warnings.catch_warnings():
        # Checkpoints hold the PiSSA-form adapter (right for resuming); final/ is converted to plain LoRA.
        warnings.filterwarnings("ignore", message="PiSSA changes the base weights")
        output = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.time() - started

    # ---- save
    final_dir = save_final(trainer, tokenizer, recipe, run_dir, pissa_init)
    summary = build_summary(
        recipe,
        trainer,
        output,
        plan,
        early,
        overfit,
        precision,
        stage,
        runtime,
        (n_train, n_all),
        render_stats or {},
        bool(evals),
        checkpoint,
        setup=setup.to_dict(),
    )
    summary["processes"] = world
    if main:
        write_json(run_dir / "train" / "summary.json", summary)
        plot_loss_curve(cb.read_metrics(metrics_path), run_dir / "train" / "loss_curve.png")
        console.print(f"[bold]final model[/] {final_dir}: {summary['final_reason']}")
    return TrainResult(
        final_dir=final_dir,
        best_checkpoint=summary["best_checkpoint"],
        train_loss=summary["train_loss"],
        eval_loss=summary["eval_loss"],
        steps=summary["steps"],
        tokens_per_second=summary["tokens_per_second"],
        metrics_path=metrics_path,
        summary=summary,
    )


def _source_weights(recipe: Recipe) -> dict[str, float]:
    return {(s.name or Path(s.path).stem): s.weight for s in recipe.data.sources}


def _training_arguments(
    recipe: Recipe, run_dir: Path, precision: str, eval_every: int, has_eval: bool, packing: bool
):
    import torch
    from transformers import TrainingArguments

    t = recipe.training
    save_every = t.save_steps or eval_every
    if has_eval and save_every % eval_every:
        raise SftlabError(
            f"training.save_steps={save_every} must be a multiple of eval_steps={eval_every} so the best checkpoint "
            "can be kept; change one of them"
        )
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=learning_rate(t.method, t.lr),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optimizer,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        seed=recipe.seed,
        data_seed=recipe.seed,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_every if has_eval else None,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None,
        restore_callback_states_from_checkpoint=True,
        # A packed row has a 4D mask, which the non-padding count would misread; packed rows are nearly full anyway.
        include_num_input_tokens_seen="all" if packing else "non_padding",
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length"
        if (recipe.render.group_by_length and not packing)
        else "random",
        dataloader_num_workers=t.num_workers,
        disable_tqdm=True,
        report_to=[r for r in t.report_to if r != "tensorboard"] or "none",  # ours writes train/tensorboard
        ddp_backend="gloo"
        if (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)
        else None,
    )
