"""Per-request changes to one row of next-token logits, and the log-probabilities a client asked for.

Every sequence in a batch carries its own settings, so each row is changed with its own:

    model logits → presence/frequency penalties → logit_bias → grammar mask → pick → logprobs

The penalties follow OpenAI's definition (``logit -= count * frequency + (count > 0) * presence``,
counting the tokens generated so far, not the prompt); transformers has no processor for that
additive form (its ``RepetitionPenaltyLogitsProcessor`` is multiplicative). ``logit_bias`` adds to
the listed ids, and -100 bans a token in practice. Log-probabilities are those of the changed row,
before temperature and top-p, so for a greedy request the chosen token is the top one. A token the
grammar rules out has probability 0; its log-probability is written as -9999.0 (JSON has no -inf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sftlab.serve.sequence import Sequence

FLOOR = -9999.0
"""The log-probability reported for a token that cannot be chosen (JSON cannot carry -inf)."""


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability, and the most likely alternatives (best first)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


class RowProcessor:
    """The settings of one sequence that change its logits; built once when it joins the batch."""

    def __init__(self, seq: Sequence):
        sampling = seq.job.sampling
        self.seq = seq
        self.presence = sampling.presence_penalty
        self.frequency = sampling.frequency_penalty
        self.bias = sampling.logit_bias
        self.bias_ids = self.bias_values = None

    @staticmethod
    def needed(seq: Sequence) -> bool:
        sampling = seq.job.sampling
        return bool(
            sampling.presence_penalty or sampling.frequency_penalty or sampling.logit_bias or seq.matcher
        )

    def __call__(self, row) -> None:
        """Change ``row`` (``[vocab]`` float32, a view into the batch's logits) in place."""
        import torch

        if self.bias and self.bias_ids is None:
            ids, values = zip(*self.bias, strict=True)
            self.bias_ids = torch.tensor(ids, dtype=torch.long, device=row.device)
            self.bias_values = torch.tensor(values, dtype=torch.float32, device=row.device)
        tokens = self.seq.tokens
        if (self.presence or self.frequency) and tokens:
            ids, counts = torch.unique(torch.tensor(tokens, device=row.device), return_counts=True)
            row[ids] -= counts.float() * self.frequency + self.presence
        if self.bias_ids is not None:
            row[self.bias_ids] += self.bias_values
        if self.seq.matcher is not None:
            self.seq.matcher.mask(row)


def logprob_of(row, token: int, top: int) -> TokenLogprob:
    """``token``'s log-probability under ``row`` and the ``top`` most likely tokens."""
    import torch

    logp = torch.log_softmax(row, dim=-1).clamp_min(FLOOR)
    best = ()
    if top:
        values, ids = logp.topk(top)
        best = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(logp[token]), best)


def pick_tokens(logits, seqs: list[Sequence], repetition_penalty: float | None = None) -> list[int]:
    """The next token of every row of ``logits`` (``[rows, vocab]``), each with its sequence's settings."""
    if repetition_penalty is not None:
        import torch
        from transformers import RepetitionPenaltyLogitsProcessor

        penalise = RepetitionPenaltyLogitsProcessor(repetition_penalty)
        for row, seq in enumerate(seqs):
            seen = torch.tensor([seq.job.prompt_ids + seq.tokens], device=logits.device)
            logits[row : row + 1] = penalise(seen, logits[row : row + 1])
    for row, seq in enumerate(seqs):
        if seq.processor is not None:
            seq.processor(logits[row])
    tokens = logits.argmax(dim=-1).tolist()
    for row, seq in enumerate(seqs):
        if seq.sampled:
            tokens[row] = seq.sample(logits[row : row + 1])
        top = seq.job.sampling.logprobs
        if top is not None:
            seq.logprobs.append(logprob_of(logits[row], tokens[row], top))
    return tokens
