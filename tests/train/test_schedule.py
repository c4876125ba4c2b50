"""The learning-rate schedule: linear warmup, then cosine/linear to the floor, or constant."""

from __future__ import annotations

import math

import pytest

from harness.train.config import ScheduleConfig
from harness.train.schedule import lr_factor


def test_warmup_then_cosine_to_floor():
    cfg = ScheduleConfig(kind="cosine", warmup_steps=10, min_lr_ratio=0.03)
    assert lr_factor(cfg, 0, 110) == pytest.approx(0.1)
    assert lr_factor(cfg, 9, 110) == pytest.approx(1.0)
    assert lr_factor(cfg, 10, 110) == pytest.approx(1.0)
    assert lr_factor(cfg, 60, 110) == pytest.approx(0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(cfg, 110, 110) == pytest.approx(0.03)
    assert lr_factor(cfg, 500, 110) == pytest.approx(0.03)  # clamped past the end


def test_linear_and_constant():
    lin = ScheduleConfig(kind="linear", warmup_steps=0, min_lr_ratio=0.0)
    assert [lr_factor(lin, s, 4) for s in range(5)] == pytest.approx([1, 0.75, 0.5, 0.25, 0])
    const = ScheduleConfig(kind="constant", warmup_steps=2)
    assert [lr_factor(const, s, 10) for s in range(4)] == pytest.approx([0.5, 1, 1, 1])
