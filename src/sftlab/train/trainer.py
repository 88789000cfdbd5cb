"""A small ``transformers.Trainer`` subclass: our loss normalisation, per-source eval loss, LoRA+, EWC, and
the loss kernel (Liger's fused linear cross-entropy on CUDA, else ours; see :mod:`sftlab.train.kernels`).

Everything else (optimizer steps, schedulers, checkpoints, resume, DDP/FSDP/
DeepSpeed through accelerate) is the stock Trainer's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer

from sftlab.render.labels import IGNORE_INDEX
from sftlab.train.fused_ce import HeadSelector, linear_cross_entropy, token_losses, trained_positions
from sftlab.train.kernels import liger_linear_cross_entropy
from sftlab.train.loss import count_trained_tokens, token_loss_sum

GROUP_KEY = "sftlab_group"
"""Batch key with each eval row's index into ``eval_groups`` ((source, task) pairs), stripped before the forward."""
WEIGHTS_KEY = "loss_weights"
PLAIN_HEAD_MODELS = frozenset(
    [
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "phi3",
        "gemma",
        "olmo",
        "olmo2",
        "starcoder2",
        "stablelm",
        "gpt2",
    ]
)
"""Architectures whose logits are exactly ``lm_head(hidden)``: the loss may be computed from the captured hidden
states. Others (logit scaling or soft-capping after the head) let the head compute the selected logits itself."""


class SftTrainer(Trainer):
    """Trainer whose step loss is the token mean over the whole accumulated, multi-process batch."""

    # compute_loss already divides by the step's trained-token count, so the Trainer must not divide by GA again.
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args: Any,
        eval_groups: list[tuple[str, str]] | None = None,
        loraplus_lr_ratio: float | None = None,
        ewc: Any = None,
        eval_data_collator: Any = None,
        loss_kernel: str = "none",
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.loss_kernel = loss_kernel
        self.eval_data_collator = eval_data_collator
        self.eval_groups = eval_groups or []
        self.loraplus_lr_ratio = loraplus_lr_ratio
        self.ewc = ewc
        self._selector: HeadSelector | None = None

    # ---- training loss -------------------------------------------------------------------------

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Fetch the step's micro-batches and count their trained tokens on every process."""
        batches = []
        for _ in range(num_batches):
            try:
                batches.append(next(epoch_iterator))
            except StopIteration:
                break
        if not batches:
            return batches, None
        local = sum(count_trained_tokens(b["labels"]) for b in batches)
        total = torch.as_tensor(local, device=device)
        if self.accelerator.num_processes > 1:
            total = self.accelerator.reduce(total, reduction="sum")
        return batches, total

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Σ (weighted) token losses / trained tokens of the whole step (× processes, undone by DDP's mean)."""
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        weights = inputs.pop(WEIGHTS_KEY, None)
        inputs.pop(GROUP_KEY, None)
        if return_outputs:  # callers that want the logits get the plain full-vocabulary path
            outputs = model(**inputs)
            loss_sum, n_local = token_loss_sum(_text_logits(outputs.logits, labels), labels, weights)
        else:
            outputs = None
            loss_sum, n_local = self._trained_token_loss(model, inputs, labels, weights)
        if num_items_in_batch is None:  # outside a training step: a plain local token mean
            loss = loss_sum / n_local.clamp(min=1)
        else:
            # DDP averages gradients over processes; scaling by their number makes the result a global token sum
            # divided by the global token count.
            denom = torch.as_tensor(num_items_in_batch, device=loss_sum.device).clamp(min=1)
            loss = loss_sum * self.accelerator.num_processes / denom
        if self.ewc is not None and model.training:
            # The penalty belongs once per optimizer step: spread it over the accumulated micro-batches.
            loss = loss + self.ewc.penalty(model) / self.current_gradient_accumulation_steps
        return (loss, outputs) if return_outputs else loss

    def _trained_token_loss(self, model, inputs, labels, weights) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss over trained positions only: the output layer never sees prompt or padding positions."""
        _, targets, selector, outputs = self._forward_trained_positions(model, inputs, labels)
        device = targets.device
        token_w = weights[:, 1:][labels[:, 1:] != IGNORE_INDEX].to(device) if weights is not None else None
        if selector.capture and self.loss_kernel == "liger" and token_w is None:
            head = selector.head
            loss_sum = liger_linear_cross_entropy(selector.hidden, head.weight, targets, bias=head.bias)
        elif selector.capture:
            head = selector.head
            loss_sum = linear_cross_entropy(
                selector.hidden, head.weight, targets, bias=head.bias, token_weights=token_w
            )
        else:  # the output layer computed the [N, V] logits itself (sharded weights, soft-capping)
            per_token = torch.nn.functional.cross_entropy(outputs.logits.float(), targets, reduction="none")
            loss_sum = (per_token * token_w).sum() if token_w is not None else per_token.sum()
        return loss_sum, torch.as_tensor(targets.numel(), device=device)

    def _forward_trained_positions(self, model, inputs, labels):
        """Forward with the output layer restricted to trained positions: ``(keep, targets, selector, outputs)``.

        ``targets`` sit on the logits' device; with ``selector.capture`` the selected hidden states are in
        ``selector.hidden``, otherwise ``outputs.logits`` holds their ``[N, V]`` logits.
        """
        keep, targets = trained_positions(labels)
        selector = self._head_selector(model)
        with selector.select(keep):
            outputs = model(**inputs, use_cache=False)
        return keep, targets.to(outputs.logits.device), selector, outputs

    def _head_selector(self, model) -> HeadSelector:
        if self._selector is None:
            config = getattr(getattr(model, "module", model), "config", None)
            capture = (
                getattr(config, "model_type", None) in PLAIN_HEAD_MODELS
                and not getattr(config, "final_logit_softcapping", None)
                and not (self.is_fsdp_enabled or self.is_deepspeed_enabled)
            )
            self._selector = HeadSelector(model, capture=capture)
        return self._selector

    # ---- optimizer (LoRA+) ---------------------------------------------------------------------

    def create_optimizer(self, model=None):
        """LoRA+: the B matrices learn ``loraplus_lr_ratio`` times faster than A (and everything else)."""
        if self.loraplus_lr_ratio is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        lr = self.args.learning_rate
        groups: dict[tuple[bool, bool], list] = defaultdict(list)
        for name, p in opt_model.named_parameters():
            if p.requires_grad:
                groups[("lora_B" in name, name in decay)].append(p)
        param_groups = [
            {
                "params": params,
                "lr": lr * self.loraplus_lr_ratio if is_b else lr,
                "weight_decay": self.args.weight_decay if has_decay else 0.0,
            }
            for (is_b, has_decay), params in groups.items()
        ]
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        kwargs.pop("lr", None)
        self.optimizer = cls(param_groups, lr=lr, **kwargs)
        return self.optimizer

    # ---- evaluation ----------------------------------------------------------------------------

    def get_eval_dataloader(self, eval_dataset=None):
        """Eval batches come from their own collator (padded, one sample per row, with group ids)."""
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Token-mean eval loss overall, per source (``eval_loss/<source>``) and per task (``eval_loss/task:<task>``)."""
        loader = self.get_eval_dataloader(eval_dataset)
        model = self._wrap_model(self.model, training=False, dataloader=loader)
        model.eval()
        sums, counts, groups = [], [], []
        with torch.no_grad():
            for batch in loader:
                batch = self._prepare_inputs(batch)
                group = batch.pop(GROUP_KEY, None)
                labels = batch.pop("labels")
                batch.pop(WEIGHTS_KEY, None)
                with self.compute_loss_context_manager():
                    row_sum, row_n = self._per_row_loss(model, batch, labels)
                if group is None:
                    group = torch.zeros_like(row_n)
                row_sum, row_n, group = self.accelerator.gather_for_metrics((row_sum, row_n, group))
                sums.append(row_sum.double().cpu())
                counts.append(row_n.cpu())
                groups.append(group.cpu())
        s, n, g = torch.cat(sums), torch.cat(counts), torch.cat(groups)
        metrics = {f"{metric_key_prefix}_loss": float(s.sum() / n.sum().clamp(min=1))}
        for pos, prefix in ((0, ""), (1, "task:")):  # per source, then per task, when there is more than one
            names = sorted({grp[pos] for grp in self.eval_groups})
            if len(names) < 2:
                continue
            for name in names:
                sel = torch.tensor([grp[pos] == name for grp in self.eval_groups])[g]
                if sel.any():
                    key = f"{metric_key_prefix}_loss/{prefix}{name or 'none'}"
                    metrics[key] = float(s[sel].sum() / n[sel].sum().clamp(min=1))
        metrics[f"{metric_key_prefix}_tokens"] = int(n.sum())
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _per_row_loss(self, model, batch, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and trained-token count of each row, from the trained positions only."""
        keep, targets, selector, outputs = self._forward_trained_positions(model, batch, labels)
        device = targets.device
        if selector.capture:
            head = selector.head
            losses = token_losses(selector.hidden, head.weight, targets, bias=head.bias)
        else:
            losses = torch.nn.functional.cross_entropy(outputs.logits.float(), targets, reduction="none")
        keep = keep.to(device)
        rows = keep.nonzero()[:, 0]
        row_sum = torch.zeros(keep.size(0), dtype=torch.float32, device=device).index_add_(0, rows, losses)
        return row_sum, keep.sum(-1)


def _text_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Drop the logits of prompt-tuning's virtual tokens, which peft prepends to the sequence."""
    extra = logits.size(1) - labels.size(1)
    return logits[:, extra:] if extra > 0 else logits
