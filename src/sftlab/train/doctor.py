"""``sftlab doctor``: the mistakes that waste a GPU run, found before it starts.

Each :class:`Finding` says how bad it is, why it matters and what to change.
Checks read the recipe, the records, the tokenizer and — for embedding checks —
only the embedding matrix of the base model (one tensor read lazily from
safetensors, not the whole model).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sftlab.data.record import Conversation, Meta, Record, Turn
from sftlab.recipe.schema import Recipe
from sftlab.train.defaults import MAX_SAFE_LR, learning_rate

SEVERITIES = ("error", "warning", "info")
SAMPLE_LIMIT = 1000
"""Records rendered for the length and end-of-turn checks (enough to estimate shares)."""


@dataclass
class Finding:
    """One problem: ``severity`` (error/warning/info), a short ``code``, ``why`` it matters, the ``fix``."""

    severity: str
    code: str
    why: str
    fix: str

    def to_dict(self) -> dict:
        return asdict(self)


def doctor(
    recipe: Recipe, train_records: Sequence[Record], tokenizer=None, device=None, installed=None
) -> list[Finding]:
    """Every finding for this recipe and data, errors first; ``device``/``installed`` describe the machine
    (:mod:`sftlab.train.hardware`; this one's when not given)."""
    from sftlab.train.doctor_hardware import check_hardware

    findings: list[Finding] = []
    findings += check_hardware(recipe, device, installed)
    findings += check_hyperparameters(recipe, len(train_records))
    findings += check_mix(recipe, train_records)
    findings += check_weights(recipe)
    if train_records:
        tokenizer = tokenizer if tokenizer is not None else _tokenizer(recipe)
        findings += check_rendering(recipe, train_records, tokenizer)
        findings += check_template_tokens(recipe, tokenizer)
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


# ---- recipe-only checks ----------------------------------------------------------------------------


def check_hyperparameters(recipe: Recipe, n_records: int) -> list[Finding]:
    """Epochs, learning rate for the method, LoRA targets, full fine-tuning on little data, no eval."""
    t = recipe.training
    out: list[Finding] = []
    if t.epochs > 3 and t.max_steps is None:
        out.append(Finding(
            "warning", "many_epochs",
            f"training.epochs={t.epochs:g}: beyond ~3 epochs SFT mostly memorises the answers and forgets general ability",
            "use 1-3 epochs, or keep eval on with early_stopping_patience so the best checkpoint is kept",
        ))  # fmt: skip
    lr = learning_rate(t.method, t.lr)
    if lr > MAX_SAFE_LR[t.method]:
        out.append(Finding(
            "warning", "lr_too_high",
            f"training.lr={lr:g} is high for method {t.method} (usual ceiling {MAX_SAFE_LR[t.method]:g}); "
            "loss spikes and forgetting follow",
            f"set training.lr to about {learning_rate(t.method, None):g} (the default for {t.method})",
        ))  # fmt: skip
    targets = t.lora.target_modules
    if t.method in ("lora", "qlora") and targets != "all-linear" and set(targets) <= {"q_proj", "v_proj"}:
        out.append(Finding(
            "warning", "lora_qv_only",
            "LoRA on q_proj/v_proj only adapts a small part of the network; adapting every linear layer "
            "(attention and MLP) matches full fine-tuning far more closely",
            "set training.lora.target_modules: all-linear",
        ))  # fmt: skip
    if t.method == "full" and 0 < n_records < 1000:
        out.append(Finding(
            "warning", "full_small_data",
            f"full fine-tuning on {n_records} records updates every weight from very little data: it overfits "
            "and forgets quickly",
            "use method: lora (or collect more data)",
        ))  # fmt: skip
    if not recipe.data.eval_sources and recipe.data.eval_fraction == 0:
        out.append(Finding(
            "info", "no_eval",
            "no eval data: no eval loss, no best checkpoint, no early stopping, no overfitting warning",
            "set data.eval_fraction (for example 0.05) or data.eval_sources",
        ))  # fmt: skip
    return out


def check_mix(recipe: Recipe, records: Sequence[Record]) -> list[Finding]:
    """General-data share of a domain run, and one task dominating the mix."""
    out: list[Finding] = []
    general = {s.name or Path(s.path).stem for s in recipe.data.sources if s.general}
    weights = {s.name or Path(s.path).stem: s.weight for s in recipe.data.sources}
    counts = Counter(r.meta.source or "default" for r in records)
    total = sum(counts[s] * weights.get(s, 1.0) for s in counts)
    if total and any(s not in general for s in counts):
        share = sum(counts[s] * weights.get(s, 1.0) for s in counts if s in general) / total
        if share < 0.05:
            out.append(Finding(
                "warning", "little_general_data",
                f"general data is {100 * share:.1f}% of the mix: a domain-only run loses general ability "
                "(instruction following, knowledge) it never practises",
                "add a general-purpose source with general: true at 5-10% of the mix (its weight sets the share), "
                "or enable training.ewc",
            ))  # fmt: skip
    tasks = Counter(r.meta.task for r in records if r.meta.task)
    if len(tasks) > 1:
        task, n = tasks.most_common(1)[0]
        share = n / sum(tasks.values())
        if share > 0.8:
            out.append(Finding(
                "warning", "task_dominates",
                f"task '{task}' is {100 * share:.0f}% of the records: the others get little gradient and the model "
                "drifts towards its format",
                "down-weight that source, or up-sample the others with training.task_upsample",
            ))  # fmt: skip
    return out


# ---- checks that render or read the model ----------------------------------------------------------


def check_weights(recipe: Recipe) -> list[Finding]:
    """A tokenizer-only ``model.name`` renders and checks data but cannot be trained."""
    from sftlab.models import resolve_model

    try:
        resolved = resolve_model(recipe.model.name, revision=recipe.model.revision)
    except Exception:  # an unresolvable model is reported when its tokenizer is loaded
        return []
    if resolved.has_weights:
        return []
    return [Finding(
        "warning", "no_weights",
        f"model.name '{recipe.model.name}' is a tokenizer without weights: data preview and these checks work, "
        "training, evaluation and generation do not",
        "set model.name to a model with weights (a folder with config.json, a .gguf file, a hub id) before training",
    )]  # fmt: skip


def check_rendering(recipe: Recipe, records: Sequence[Record], tokenizer) -> list[Finding]:
    """Share of samples max_length cuts, whether the end-of-turn token is trained, unfilled
    ``{{ variables }}`` in trained text, and reasoning that inference (thinking off) never sees."""
    from sftlab.render import RenderError, resolve_template
    from sftlab.render.checks import carries_reasoning, template_variables, trained_text
    from sftlab.render.reasoning import thinking_off
    from sftlab.render.sample import render_conversation

    out: list[Finding] = []
    conversations = [r for r in records[:SAMPLE_LIMIT] if isinstance(r, Conversation)]
    if not conversations:
        return out
    resolve_template(tokenizer, recipe.render.template, recipe.render.template_kwargs)
    cfg = recipe.render.model_copy(update={"truncation": "drop_turns", "on_empty_labels": "drop"})
    too_long = ends_trained = rendered = 0
    render_errors: list[str] = []
    variables: dict[str, list[Record]] = {}
    no_thinking = thinking_off(tokenizer)
    mismatch = [r for r in conversations if no_thinking and carries_reasoning(r, cfg)]
    stop_ids = _stop_ids(tokenizer)
    for rec in conversations:
        n = len(tokenizer.apply_chat_template(_messages(rec), tokenize=True, return_dict=False))
        too_long += n > cfg.max_length
        try:
            samples = render_conversation(rec, tokenizer, cfg).samples
        except RenderError as err:
            render_errors.append(str(err))
            continue
        rendered += 1
        for sample in samples:
            trained = [x for x in sample.labels if x != -100]
            ends_trained += bool(trained) and trained[-1] in stop_ids
        for name in template_variables("\n".join(trained_text(tokenizer, s) for s in samples)):
            variables.setdefault(name, []).append(rec)
    out += _variable_findings(recipe, variables)
    if mismatch:  # one cause, reported once: not again among the render failures it causes
        out.append(_thinking_mismatch(len(mismatch)))
        render_errors = [e for e in render_errors if "thinking off" not in e]
    if render_errors:
        out.append(Finding(
            "error", "render_fails",
            f"{len(render_errors)} of {len(conversations)} records cannot be rendered, for example: {render_errors[0]}",
            "run sftlab data preview on the recipe to see the masks, and fix the template or the records",
        ))  # fmt: skip
    share = too_long / len(conversations)
    if share > 0.05:
        out.append(Finding(
            "warning", "max_length_cuts",
            f"{100 * share:.0f}% of the records are longer than render.max_length={cfg.max_length} tokens and lose "
            "their last turns (or are dropped)",
            "raise render.max_length, or filter long records in curation",
        ))  # fmt: skip
    if rendered and ends_trained == 0:
        out.append(Finding(
            "error", "eos_untrained",
            "no sample trains the end-of-turn/EOS token, so the model never learns to stop and rambles at inference",
            "use a template whose assistant turn ends with the EOS or end-of-turn token, and render.train_on "
            "that includes it (all_assistant)",
        ))  # fmt: skip
    return out


def check_template_tokens(recipe: Recipe, tokenizer) -> list[Finding]:
    """Template markers that are not single tokens, or whose embeddings were never trained (base models)."""
    from sftlab.render import resolve_template

    out: list[Finding] = []
    if recipe.render.template == "model" and not getattr(tokenizer, "chat_template", None):
        return out
    resolve_template(tokenizer, recipe.render.template, recipe.render.template_kwargs)
    text = tokenizer.apply_chat_template(_messages(_PROBE), tokenize=False)
    markers = sorted(set(re.findall(r"<\|?[A-Za-z_][\w|]*\|?>|\[/?INST\]", text)))
    split = [m for m in markers if len(tokenizer.encode(m, add_special_tokens=False)) > 1]
    if split:
        out.append(Finding(
            "warning", "template_tokens_not_special",
            f"chat-template markers {', '.join(split)} are split into several ordinary tokens: the model has to "
            "learn them as text and fine-tuning needs more data to follow the format",
            "use the model's own template (render.template: model) or add the markers as special tokens",
        ))  # fmt: skip
    ids = {
        t
        for m in markers
        for t in tokenizer.encode(m, add_special_tokens=False)
        if len(tokenizer.encode(m, add_special_tokens=False)) == 1
    }
    ids |= _stop_ids(tokenizer)
    untrained = _untrained_rows(recipe, sorted(ids))
    if untrained:
        names = ", ".join(tokenizer.convert_ids_to_tokens(i) for i in untrained)
        adapters = recipe.training.method in ("lora", "qlora", "prompt_tuning", "p_tuning")
        out.append(Finding(
            "error" if adapters else "warning", "untrained_template_embeddings",
            f"the embeddings of {names} look untrained (near-zero or identical rows): a base model that never saw "
            "this chat template" + (", and adapters cannot change embeddings" if adapters else ""),
            "start from the instruct model, or train the embeddings (method: full), or use a template made of "
            "tokens the model knows (render.template: plain/alpaca)",
        ))  # fmt: skip
    return out


def _thinking_mismatch(n: int) -> Finding:
    return Finding(
        "error", "thinking_mismatch",
        f"{n} records carry reasoning but the chat template runs inference with thinking off "
        "(its generation prompt closes an empty think block): the model would learn reasoning it is never "
        "asked to produce, and these records cannot be rendered as inference sees them",
        "remove enable_thinking: false from render.template_kwargs, or set render.reasoning: drop",
    )  # fmt: skip


def _variable_findings(recipe: Recipe, variables: dict[str, list[Record]]) -> list[Finding]:
    """One warning for unfilled ``{{ name }}`` placeholders in trained text, naming the source to fix."""
    from sftlab.render.checks import substitute_fix

    if not variables:
        return []
    records = {id(r): r for recs in variables.values() for r in recs}
    names = list(variables)
    index = {s.name or Path(s.path).stem: i for i, s in enumerate(recipe.data.sources)}
    sources = sorted({index.get(r.meta.source or "", -1) for r in records.values()})
    where = sources[0] if len(sources) == 1 and sources[0] >= 0 else "i"
    examples = ", ".join(str(r.meta.id or r.meta.source or "?") for r in list(records.values())[:3])
    shown = ", ".join("{{" + n + "}}" for n in names[:5])
    return [Finding(
        "warning", "template_variables",
        f"{len(records)} records train unfilled template variables {shown} (e.g. {examples}): the model learns "
        "to answer with the placeholder itself",
        substitute_fix(names, where),
    )]  # fmt: skip


_PROBE = Conversation(turns=[Turn("user", "hi"), Turn("assistant", "hello")], system="sys", meta=Meta())


def _messages(rec: Conversation) -> list[dict]:
    from sftlab.render.messages import to_messages

    return to_messages(rec)


def _stop_ids(tokenizer) -> set[int]:
    """Tokens that end an assistant turn: EOS plus end-of-turn markers the tokenizer knows."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return ids


def _tokenizer(recipe: Recipe):
    from sftlab.models import load_tokenizer

    return load_tokenizer(
        recipe.model.name, revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
    )


def _untrained_rows(recipe: Recipe, ids: list[int]) -> list[int]:
    """Ids whose input-embedding rows are near zero or equal to the mean row (typical of never-seen tokens)."""
    emb = _embedding_matrix(recipe)
    if emb is None or not ids:
        return []
    emb = emb.float()
    norms = emb.norm(dim=1)
    typical = norms.median()
    mean_row = emb.mean(dim=0)
    out = []
    for i in ids:
        if i >= emb.shape[0]:
            continue
        tiny = norms[i] < 0.1 * typical
        at_mean = (emb[i] - mean_row).norm() < 0.1 * typical
        if tiny or at_mean:
            out.append(i)
    return out


def _embedding_matrix(recipe: Recipe):
    """The input-embedding tensor of the base model, read alone from its safetensors files."""
    import json

    from safetensors import safe_open

    from sftlab.models import resolve_model

    try:
        folder = Path(resolve_model(recipe.model.name, revision=recipe.model.revision).path)
    except Exception:  # an unresolvable model is reported by the training run itself
        return None
    index = folder / "model.safetensors.index.json"
    files = [folder / "model.safetensors"]
    if index.is_file():
        files = [folder / f for f in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    for f in files:
        if not f.is_file():
            continue
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not iterable
                if key.endswith("embed_tokens.weight") or key.endswith("wte.weight"):
                    return fh.get_tensor(key)
    return None
