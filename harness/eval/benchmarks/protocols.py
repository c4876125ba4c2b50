"""Named evaluation protocols: which decoding runs a protocol makes and how it reports pass@k.

- `greedy` (DeepSeek-V3 Table 4's): HumanEval 0-shot and MBPP 3-shot, greedy, pass@1.
- `sampled` (Gloeckle et al. 2024 Table 1's): n samples per problem at several temperatures;
  for each k the best temperature is reported, as the paper chose its temperature per
  metric, and every fixed-temperature figure is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.eval.config import EvalConfig


@dataclass(frozen=True)
class Variant:
    """One decoding run over the tasks."""

    name: str  # "greedy" or "t0.8"; names output files and metric suffixes
    n: int  # samples per problem (lm-eval `repeats`)
    temperature: float | None  # None: greedy
    top_p: float | None
    ks: tuple[int, ...]

    @property
    def sampled(self) -> bool:
        return self.temperature is not None

    def generation_kwargs(self, max_gen_toks: int | None) -> dict:
        kwargs: dict = {"do_sample": self.sampled}
        if self.sampled:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        if max_gen_toks is not None:
            kwargs["max_gen_toks"] = max_gen_toks
        return kwargs


def variants(cfg: EvalConfig) -> list[Variant]:
    if cfg.protocol == "greedy":
        return [Variant("greedy", 1, None, None, (1,))]
    ks = tuple(k for k in cfg.ks if k <= cfg.n_samples)
    return [Variant(f"t{t:g}", cfg.n_samples, t, cfg.top_p, ks) for t in cfg.temperatures]


def protocol_metrics(task: str, per_variant: dict[str, dict], chosen: list[Variant]) -> dict[str, float]:
    """Metric names MLflow accepts ('@' is not allowed): `<task>/pass_at_<k>` is the protocol's
    headline (greedy, or best temperature), `<task>/pass_at_<k>_<variant>` each fixed one, and
    `<task>/pass_at_<k>_temperature` the temperature that won."""
    metrics: dict[str, float] = {}
    for variant in chosen:
        summary = per_variant[variant.name]
        for k in variant.ks:
            value = summary.get(f"pass_at_{k}")
            if value is None:
                continue
            if not variant.sampled:
                metrics[f"{task}/pass_at_{k}"] = value
                continue
            metrics[f"{task}/pass_at_{k}_{variant.name}"] = value
            if value > metrics.get(f"{task}/pass_at_{k}", -1.0):  # ties keep the first listed
                metrics[f"{task}/pass_at_{k}"] = value
                metrics[f"{task}/pass_at_{k}_temperature"] = variant.temperature
    for status in ("timeout", "error"):
        metrics[f"{task}/{status}_fraction"] = _fraction(per_variant, status)
    metrics[f"{task}/problems"] = max(s["problems"] for s in per_variant.values())
    return metrics


def _fraction(per_variant: dict[str, dict], status: str) -> float:
    samples = sum(s["samples"] for s in per_variant.values())
    return sum(s[status] for s in per_variant.values()) / samples if samples else 0.0
