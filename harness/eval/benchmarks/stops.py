"""Stop sequences per row: a row of a generation batch is finished once its text holds a stop.

lm-eval 0.4.13's HF backend builds one stopping criterion per stop string and ends a batch
only when *every* row has produced *that same* string (`MultiTokenEOSCriteria`: "return
False not in self.done_tracker"). HumanEval stops at any of five strings, so a batch whose
rows end at different ones runs to max_gen_toks, and each step decodes the batch's tails
once per string. `RowStops` marks each row finished on its own, so transformers' `generate`
pads that row and ends the batch when its last row is done.

Why the completions stay byte-identical to lm-eval's: lm-eval decodes each row's tokens with
`skip_special_tokens=True` and keeps the text before the first stop (`postprocess_generated_text`).
A row is marked finished only when that same decode of its tokens so far already holds a
stop, and extra tokens only append text after it, so the kept text cannot change
(byte-level decoding: the text of a token prefix is a prefix of the text). Two cases could
break that and get a margin of characters past the stop before the row finishes: stop
strings that overlap (a suffix of one is a prefix of another, or one contains another:
lm-eval splits at each string in turn, so a later one can cut into an earlier one), and
tokenizers that clean up spaces on decode (" ." -> "."), which can rewrite the last
characters of a text once more tokens follow.
"""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

CLEANUP_REACH = 4  # longest pattern transformers' clean_up_tokenization rewrites (" n't")
REPLACEMENT = "\ufffd"  # what a token holding part of a UTF-8 character decodes to alone


def completing_tokens(tokenizer, stops: list[str]) -> torch.Tensor:
    """(vocab,) bool: True for the tokens that may complete a stop, i.e. whose text alone holds
    a stop's last character or part of a character. A step whose new tokens are all False
    cannot have completed a stop, so no row needs decoding then."""
    ends = {s[-1] for s in stops if s}
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=True)
    return torch.tensor([REPLACEMENT in t or any(c in t for c in ends) for t in texts], dtype=torch.bool)


def overlapping(stops: list[str]) -> bool:
    """True when a cut at one stop could depend on text past another (see module docstring)."""
    for a in stops:
        for b in stops:
            if a == b or not a or not b:
                continue
            if b in a or any(a.startswith(b[i:]) for i in range(1, len(b))):
                return True
    return False


class RowStops(StoppingCriteria):
    """Per row: finished once its decoded continuation holds a stop string (plus `margin` chars).

    Each step decodes only the last few tokens of the rows still running whose new token may
    complete a stop (`completing`, from `completing_tokens`; one batch_decode call), and
    confirms a hit on the row's whole continuation before finishing it, so a finished row is
    always one lm-eval would cut at the same place. `finished_at[i]` is the
    number of tokens row i had generated when it finished (for the benchmark's accounting).
    """

    def __init__(self, tokenizer, stops: list[str], prompt_length: int, batch_size: int, eos_ids=(),
                 completing: torch.Tensor | None = None):  # fmt: skip
        self.tokenizer, self.prompt_length, self.eos_ids = tokenizer, prompt_length, set(eos_ids)
        self.completing = completing
        self.stops = [s for s in stops if s]
        longest = max((len(s) for s in self.stops), default=0)
        # a token decodes to at least one character except for a split UTF-8 sequence
        self.lookback = longest + 4
        reach = CLEANUP_REACH if getattr(tokenizer, "clean_up_tokenization_spaces", False) else 0
        self.margin = longest + reach if overlapping(self.stops) or reach else 0
        self.finished_at: list[int | None] = [None] * batch_size
        self.pending: set[int] = set()  # rows holding a stop, waiting for their margin

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_length :]  # (B, generated so far)
        last = new[:, -1].tolist()
        for i, at in enumerate(self.finished_at):  # transformers finishes these rows itself
            if at is None and last[i] in self.eos_ids:
                self.finished_at[i] = new.shape[1]
        running = [i for i, at in enumerate(self.finished_at) if at is None and self._may_stop(i, last[i])]
        if running and self.stops:
            tails = self.tokenizer.batch_decode(new[running, -self.lookback :], skip_special_tokens=True)
            for i, tail in zip(running, tails):
                if (i in self.pending or any(s in tail for s in self.stops)) and self._settled(i, new[i]):
                    self.finished_at[i] = new.shape[1]
        done = [at is not None for at in self.finished_at]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _may_stop(self, row: int, token: int) -> bool:
        if self.completing is None or row in self.pending or token >= len(self.completing):
            return True
        return bool(self.completing[token])

    def _settled(self, row: int, tokens: torch.Tensor) -> bool:
        """The row's text (as lm-eval decodes it) holds a stop, `margin` characters before its end."""
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        ends = [text.find(s) + len(s) for s in self.stops if s in text]
        if ends:
            self.pending.add(row)
        return bool(ends) and len(text) - min(ends) >= self.margin
