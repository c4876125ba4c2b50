"""The objective registry: the interface every objective satisfies, and lookup by name.

As lm-eval registers models: `@register_objective("meta")` on a class, a second class under
the same name raises, and an unknown name raises with close matches. The name is the
`kind:` of the objective's config in a recipe.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Callable, Protocol

from harness.errors import HarnessError

if TYPE_CHECKING:
    import torch

    from harness.model.objectives.base import ModelOutput, ObjectiveBase
    from harness.model.trunk import Block, Trunk, TrunkConfig

class Objective(Protocol):
    """An `nn.Module` that owns the parameters an objective adds on top of the trunk.

    Constructed as `cls(config, model_cfg)`. The trunk is passed to each call (not owned), so
    that the shared embedding, final norm and unembedding stay the trunk's.
    """

    config: ObjectiveBase

    @staticmethod
    def shared_layers(config: ObjectiveBase, model_cfg: TrunkConfig) -> int:
        """How many of the recipe's L layers the trunk keeps (Meta: L - n; others: L)."""

    def init_weights(self, generator: torch.Generator) -> None:
        """Initialise own parameters; called after the trunk's, in a fixed order."""

    def forward(
        self, trunk: Trunk, hidden: torch.Tensor, tokens: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], tokens_seen: int
    ) -> ModelOutput:
        """hidden: (B, S, d) trunk output before the final norm; tokens: the row (B, S+lookahead)."""

    def depth_logits(self, trunk: Trunk, hidden: torch.Tensor, tokens: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        """Per depth (B, S, V) logits; depth 1 predicts the next token."""

    def next_token_blocks(self) -> list[Block]:
        """Blocks the next-token path runs after the trunk's layers (Meta: head 1)."""

    def export_names(self, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        """Own state-dict key -> ("model" | "mtp", exported name). "model" keys join the
        Hugging Face Llama directory; "mtp" keys go to mtp_heads.safetensors."""


_REGISTRY: dict[str, type] = {}


def register_objective(name: str) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"objective {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return decorate


def get_objective(name: str) -> type:
    """The objective class registered as `name`; an unknown name names the close ones."""
    import harness.model.objectives  # noqa: F401  (registers the built-in objectives)

    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise HarnessError(
            f"unknown objective {name!r}; {hint}registered: {', '.join(sorted(_REGISTRY))}",
            fix="set objective.kind to a registered name",
        )
    return _REGISTRY[name]


def registered_objectives() -> list[str]:
    import harness.model.objectives  # noqa: F401

    return sorted(_REGISTRY)
