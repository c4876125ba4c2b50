"""The `hf` evaluation backend: lm-eval's HFLM, with stops per row and prompts cut per task.

Two changes to lm-eval 0.4.13's HFLM, everything else (batching, padding, decoding, post-
processing) is its own code:
1. Stop sequences are checked per row (`harness.eval.benchmarks.stops.RowStops`): a batch ends when its
   last row has stopped instead of when all rows produced the same stop string, and each
   step decodes a few tail tokens once instead of once per stop string. The model's forward
   calls are transformers' `generate` ones, unchanged, so greedy completions are byte-identical
   to lm-eval's own HF backend (tests/eval/benchmarks/test_hf_backend.py runs both).
2. Prompts are left-truncated to a budget per task (`harness.eval.benchmarks.context.prompt_budget`),
   not to one `max_length` for every task, and the truncated prompts are counted per task.
3. Data parallel over the harness's own process group (`shard=True`): this process is rank r
   of the group's world, and lm-eval's evaluator gives it every world-th problem, pads the
   ranks to the same number of requests and gathers the logged samples on rank 0 through
   `all_gather` / `gather_object` / `barrier` below (lm-eval's own scheme; its Accelerate
   path is not used: it numbers ranks by their index on the node, which repeats across nodes,
   and picks the device itself). The caller loads the model on its device (`lmeval.load_model`).

Registered as `harness-hf`, after `import lm_eval.models` so the built-in backends keep their
names (ENV-NOTES). Imports lm-eval and transformers at module level: import it only inside
the command that evaluates.
"""

from __future__ import annotations

import json
from collections import defaultdict

import lm_eval.models  # noqa: F401  (registers the built-in backends first)
import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import normalize_gen_kwargs
from transformers import StoppingCriteriaList

from harness.eval.benchmarks.context import prompt_budget
from harness.eval.benchmarks.stops import RowStops, completing_tokens


@register_model("harness-hf")
class HarnessHFLM(HFLM):
    """HFLM + per-row stops + per-task prompt budgets.

    context_length: the model's trained context; each task's prompts keep
        `prompt_budget(context_length, max_gen_toks)` tokens. None: lm-eval's rule, the same
        `max_length - max_gen_toks` for every task (`max_length` given, or the model's).
    truncated / prompts: per lm-eval task, the doc ids of prompts longer than their budget /
        of every prompt seen (sets: repeats and variants see a prompt several times).
    budgets: per lm-eval task, the prompt budget its prompts were cut to.
    batches: per generation batch (rows, steps, tokens each row kept generating after it
        had stopped, as the batch ran on for its slowest row); the benchmark's accounting.
    """

    def __init__(self, *args, context_length: int | None = None, shard: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if shard:
            from harness.ranks import group_size

            self._rank, self._world_size = group_size()
        self.context_length = context_length
        self.truncated: dict[str, set] = defaultdict(set)
        self.prompts: dict[str, set] = defaultdict(set)
        self.budgets: dict[str, int] = {}
        self.batches: list[tuple[int, int, int]] = []
        self._completing: dict[tuple[str, ...], torch.Tensor] = {}  # per stop list (stops.completing_tokens)

    # lm-eval's collectives for data parallelism (used only when world_size > 1): the request
    # count of every rank (a 0-d tensor in, one entry per rank out), the logged samples and
    # metrics on rank 0, and a barrier after each request type.
    def all_gather(self, tensor):
        from harness.ranks import all_gather

        return torch.tensor(all_gather(tensor.item()))

    def gather_object(self, obj, dst=0):
        from harness.ranks import gather_to_main

        assert dst == 0, "lm-eval gathers on rank 0"
        return gather_to_main(obj)

    def barrier(self) -> None:
        from harness.ranks import barrier

        barrier()

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """lm-eval's generate_until once per group of generation kwargs (lm-eval batches
        within a group anyway, so the batches are the same), each with its own prompt budget."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            groups[json.dumps(request.args[1], sort_keys=True, default=str)].append(i)
        results: list[str | None] = [None] * len(requests)
        own_max_length = self._max_length
        try:
            for indices in groups.values():
                group = [requests[i] for i in indices]
                self._max_length = self._budget_for(group) + self._max_gen_toks_of(group)
                for i, text in zip(indices, super().generate_until(group, disable_tqdm=disable_tqdm)):
                    results[i] = text
        finally:
            self._max_length = own_max_length
        return results

    def _max_gen_toks_of(self, group) -> int:
        return normalize_gen_kwargs(group[0].args[1], self.max_gen_toks)["max_gen_toks"]

    def _budget_for(self, group) -> int:
        """The group's prompt budget; counts the prompts lm-eval will left-truncate to it."""
        max_gen_toks = self._max_gen_toks_of(group)
        if self.context_length is None:
            budget = self.max_length - max_gen_toks  # HFLM asserts this is positive
        else:
            budget = prompt_budget(self.context_length, max_gen_toks)
        for request in group:
            self.budgets[request.task_name] = budget
            self.prompts[request.task_name].add(request.doc_id)
            if len(self.tok_encode(request.args[0])) > budget:
                self.truncated[request.task_name].add(request.doc_id)
        return budget

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs) -> torch.Tensor:
        """HFLM._model_generate with `RowStops` in place of lm-eval's per-string criteria
        (the temperature handling is lm-eval 0.4.13's, line for line)."""
        generation_kwargs["temperature"] = generation_kwargs.get("temperature", 0.0)
        do_sample = generation_kwargs.get("do_sample")
        if (temp := generation_kwargs.get("temperature")) == 0.0 and do_sample is None:
            generation_kwargs["do_sample"] = do_sample = False
        if do_sample is False and temp == 0.0:
            generation_kwargs.pop("temperature", None)
        eos = self.model.generation_config.eos_token_id
        eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        key = tuple(stop)
        if key not in self._completing:
            self._completing[key] = completing_tokens(self.tokenizer, stop)
        stops = RowStops(self.tokenizer, stop, context.shape[1], context.shape[0], eos_ids, self._completing[key])
        with torch.autocast(
            device_type=self.device.type,
            dtype=self.mixed_precision_dtype,
            enabled=self.mixed_precision_dtype is not None,
        ):
            out = self.model.generate(
                input_ids=context,
                max_length=max_length,
                stopping_criteria=StoppingCriteriaList([stops]),
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
                **generation_kwargs,
            )
        steps = out.shape[1] - context.shape[1]
        idle = sum(steps - (at or steps) for at in stops.finished_at)
        self.batches.append((context.shape[0], steps, idle))
        return out
