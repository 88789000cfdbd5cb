"""``sftlab chat|export|serve|estimate``: use a trained model (thin wrappers over the library)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from sftlab.cli.common import out, print_json
from sftlab.errors import SftlabError


def chat(
    model: str = typer.Argument(..., help="Model, adapter or run folder."),
    system: str = typer.Option(None, help="System prompt."),
    max_new_tokens: int = typer.Option(256, help="Longest reply in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass."),
    seed: int = typer.Option(0, help="Sampling seed."),
) -> None:
    """Chat in the terminal with the model's template (/reset, /system TEXT, /exit); reads stdin line by line."""
    from sftlab.models import load_model, load_tokenizer, resolve_model
    from sftlab.models.generate import check_generation_args
    from sftlab.serve.chat import HELP, chat_loop

    check_generation_args(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    resolved = resolve_model(model)
    tokenizer = load_tokenizer(resolved)
    lm = load_model(resolved, merge_adapter=True)
    interactive = sys.stdin.isatty()

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if interactive:
        write(f"chatting with {model}; {HELP}\n")
    chat_loop(
        lm,
        tokenizer,
        sys.stdin,
        write,
        system=system,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        prompt="> " if interactive else "",
    )


def export(
    run: str = typer.Argument(..., help="Run folder, adapter folder or model."),
    out_dir: str = typer.Option(..., "--out", help="Output folder (replaced atomically)."),
    merge: bool = typer.Option(False, "--merge", help="Merge LoRA into the base weights (the default)."),
    adapter_only: bool = typer.Option(False, "--adapter-only", help="Write only the peft adapter folder."),
    dequantize: bool = typer.Option(False, "--dequantize", help="Dequantize a 4-bit/GPTQ base, then merge."),
    dtype: str = typer.Option("auto", help="auto (the base's dtype), float32, bfloat16 or float16."),
    format: str = typer.Option("hf", "--format", help="hf (Hugging Face folder) or gguf (llama.cpp/Ollama)."),
    quant: str = typer.Option(
        "f16", "--quant", help="GGUF tensor type: f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0."
    ),
) -> None:
    """Merge a LoRA adapter into a standalone Hugging Face folder or a GGUF with an Ollama Modelfile, or export the adapter alone."""
    from sftlab.export import export_model

    if merge and adapter_only:
        raise SftlabError("--merge and --adapter-only exclude each other; pick one")
    result = export_model(
        run,
        out_dir,
        adapter_only=adapter_only,
        dequantize=dequantize,
        dtype=dtype,
        format=format,
        quant=quant,
    )
    detail = (
        f"{result.merged_modules} LoRA modules merged, logits within {result.max_logit_error:.1e} of the adapter"
        if result.mode == "merged"
        else result.mode
    )
    if result.format == "gguf":
        template = "Modelfile with TEMPLATE" if result.modelfile_template else "Modelfile without TEMPLATE"
        detail += f"; {result.gguf_file} ({result.quant}), {template}"
    out.print(f"[green]exported[/green] {run} → {result.out} ({detail})")
    for note in result.notes:
        out.print(f"[yellow]note:[/yellow] {note}")


def serve(
    model: str = typer.Argument(..., help="Model, adapter or run folder."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    api_key: str = typer.Option(None, envvar="SFTLAB_API_KEY", help="Require 'Authorization: Bearer KEY'."),
    max_tokens_limit: int = typer.Option(2048, min=1, help="Largest max_tokens a request may ask for."),
    max_body_bytes: int = typer.Option(1_000_000, min=1, help="Larger request bodies get 413."),
    max_queue: int = typer.Option(256, min=1, help="Requests waiting or running before 429."),
    max_batch: int = typer.Option(
        8, min=1, help="Most requests generated together; new ones join between steps."
    ),
    request_timeout: float = typer.Option(
        None,
        min=0.001,
        help="Seconds a request may take from arrival: a generating one ends with finish_reason 'length', "
        "a queued one gets 503.",
    ),
    request_log: str = typer.Option(None, help="JSONL file: one flushed line per completed request."),
    served_name: str = typer.Option(None, help="Model id shown in /v1/models (default: the folder name)."),
) -> None:
    """Serve an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health)."""
    from sftlab.serve import serve as run_server

    run_server(
        model,
        host=host,
        port=port,
        api_key=api_key,
        max_tokens_limit=max_tokens_limit,
        max_body_bytes=max_body_bytes,
        max_queue=max_queue,
        max_batch=max_batch,
        request_timeout=request_timeout,
        request_log=request_log,
        served_name=served_name,
    )


def estimate(
    recipe: str = typer.Argument(None, help="Recipe YAML (model, method, batch, length, LoRA rank from it)."),
    model: str = typer.Option(None, help="Model reference (instead of a recipe)."),
    method: str = typer.Option(None, help="full, lora or qlora."),
    seq_len: int = typer.Option(None, min=1, help="Sequence length in tokens."),
    batch: int = typer.Option(None, min=1, help="Per-GPU micro-batch."),
    gpus: int = typer.Option(1, min=1, help="GPUs sharing the work (with --zero)."),
    zero: int = typer.Option(0, min=0, max=3, help="DeepSpeed ZeRO stage 0-3."),
    grad_checkpointing: bool = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing"),
    optimizer: str = typer.Option(
        None,
        help="As training.optimizer: adamw_torch_fused (default), adamw_8bit, paged_adamw_8bit, adafactor, ...",
    ),
    lora_r: int = typer.Option(None, min=1, help="LoRA rank."),
    measure: bool = typer.Option(False, "--measure", help="Also run a few real steps (CUDA only)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Estimate GPU memory for training, with a breakdown and a verdict per GPU size."""
    from sftlab.estimate import estimate_memory, model_config

    settings = _estimate_settings(
        recipe, model, method, seq_len, batch, grad_checkpointing, lora_r, optimizer
    )
    config = model_config(settings["model"])
    result = estimate_memory(
        config,
        method=settings["method"],
        seq_len=settings["seq_len"],
        batch=settings["batch"],
        gpus=gpus,
        zero=zero,
        grad_checkpointing=settings["grad_checkpointing"],
        optimizer=settings["optimizer"],
        lora_r=settings["lora_r"],
        target_modules=settings["target_modules"],
    )
    if measure:
        from sftlab.estimate.measure import measure_peak

        result.measured_peak = measure_peak(
            settings["model"],
            method=settings["method"],
            seq_len=settings["seq_len"],
            batch=settings["batch"],
            grad_checkpointing=result.grad_checkpointing,  # "auto" resolved by the estimate
            optimizer=result.optimizer,
            lora_r=settings["lora_r"],
        )
    if as_json:
        print_json({"model": settings["model"], **result.to_dict()})
        return
    _print_estimate(settings["model"], result)


def _estimate_settings(
    recipe, model, method, seq_len, batch, grad_checkpointing, lora_r, optimizer=None
) -> dict:
    """Flags win over the recipe; without a recipe, defaults fill in (LoRA, 2048 tokens, batch 1)."""
    settings = {
        "model": "smollm2-135m-instruct",
        "method": "lora",
        "seq_len": 2048,
        "batch": 1,
        "grad_checkpointing": False,
        "lora_r": 16,
        "target_modules": "all-linear",
        "optimizer": "adamw_torch_fused",
    }
    if recipe:
        from sftlab.recipe import load_recipe

        r = load_recipe(recipe, [])
        method_of = r.training.method if r.training.method in ("full", "lora", "qlora") else "lora"
        settings.update(
            model=r.model.name,
            method=method_of,
            seq_len=r.render.max_length,
            batch=r.training.batch_size,
            grad_checkpointing=r.training.gradient_checkpointing,
            lora_r=r.training.lora.r,
            target_modules=r.training.lora.target_modules,
            optimizer=r.training.optimizer,
        )
    elif model is None:
        raise SftlabError("name a recipe (sftlab estimate RECIPE) or a model (--model M)")
    given = {
        "model": model,
        "method": method,
        "seq_len": seq_len,
        "batch": batch,
        "grad_checkpointing": grad_checkpointing,
        "lora_r": lora_r,
        "optimizer": optimizer,
    }
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"


def _print_estimate(model: str, e) -> None:
    table = Table(
        title=f"{model}: {e.method}, batch {e.batch} × {e.seq_len} tokens, {e.gpus} GPU(s), ZeRO-{e.zero}"
    )
    table.add_column("part")
    table.add_column("per GPU", justify="right")
    for part, size in e.parts.items():
        table.add_row(part.replace("_", " "), _gib(size))
    table.add_row("[bold]total[/bold]", f"[bold]{_gib(e.total)}[/bold]")
    if e.measured_peak is not None:
        table.add_row("measured peak (max_memory_allocated)", _gib(e.measured_peak))
    out.print(table)
    out.print(f"parameters: {e.params_total:,} total, {e.params_trainable:,} trainable")
    rot = e.rule_of_thumb
    out.print(
        f"rule of thumb for full fine-tuning: ~12× parameters = {_gib(rot['full_12x'])}; "
        f"mixed-precision AdamW 16-18 bytes/param = {_gib(rot['full_mixed_adamw_16x'])}-{_gib(rot['full_mixed_adamw_18x'])} "
        "(weights, gradients and optimizer only)"
    )
    out.print("  ".join(f"{size}: {v}" for size, v in e.verdicts.items()))
