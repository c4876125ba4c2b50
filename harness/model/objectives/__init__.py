"""The training objectives, one file each; the recipe picks one by `objective.kind`."""

from harness.config_tree import kind_union
from harness.model.objectives.deepseek import DeepSeekConfig
from harness.model.objectives.meta import MetaConfig
from harness.model.objectives.stp import StpConfig

ObjectiveConfig = kind_union(StpConfig, MetaConfig, DeepSeekConfig)
