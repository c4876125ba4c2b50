"""Self-speculative greedy decoding: its output is plain greedy decoding's, token for token."""

from __future__ import annotations

import pytest
import torch

from harness.eval.analyses.speculative import compare_decoders, decode
from tests.eval.mtp_models import ARMS, copy_model, objective, phrase_corpus, random_model, trained_model

pytestmark = pytest.mark.usefixtures("one_thread")


@torch.no_grad()
def uncached_greedy(model, prompt: list[int], max_new_tokens: int, eos_id: int | None = None) -> list[int]:
    """The definition: argmax of the next-token logits of the whole sequence, again and again."""
    ids = list(prompt)
    for _ in range(max_new_tokens):
        ids.append(int(model.next_token_logits(torch.tensor([ids]))[0, -1].argmax()))
        if ids[-1] == eos_id:
            break
    return ids[len(prompt) :]


PROMPTS = {"one token": [3], "five": [5, 9, 2, 17, 30], "thirteen": phrase_corpus(13, 7).tolist()}


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_plain_cached_decoding_is_greedy_decoding(arm):
    model = random_model(ARMS[arm])
    for prompt in PROMPTS.values():
        assert decode(model, prompt, 20).tokens == uncached_greedy(model, prompt, 20)


@pytest.mark.parametrize("trained", [False, True], ids=["random", "trained"])
@pytest.mark.parametrize("arm", sorted(ARMS))
def test_speculative_equals_greedy(arm, trained):
    model = trained_model(arm) if trained else random_model(ARMS[arm])
    n_draft = ARMS[arm].n_predict - 1
    accepted_some = False
    for name, prompt in PROMPTS.items():
        for max_new in (1, 2, 7, 40):  # 1 and 2: the budget ends within the first steps
            plain = decode(model, prompt, max_new)
            spec = decode(model, prompt, max_new, speculative=True)
            assert spec.tokens == plain.tokens, (name, max_new)
            assert len(spec.tokens) == max_new and plain.steps == max_new
            assert spec.steps <= plain.steps
            assert spec.steps >= 1 + (max_new - 1) / (n_draft + 1)  # at most n tokens per step
            accepted_some |= spec.steps < plain.steps
    if trained:  # its drafts are often right, so some steps yield several tokens
        assert accepted_some


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_eos_stops_both_decoders_at_the_same_token(arm):
    model = trained_model(arm)
    prompt = PROMPTS["thirteen"]
    free = decode(model, prompt, 40).tokens
    for cut in (0, 3, 9, 17):
        eos = free[cut]
        expected = free[: free.index(eos) + 1]
        assert decode(model, prompt, 40, eos_id=eos).tokens == expected
        assert decode(model, prompt, 40, eos_id=eos, speculative=True).tokens == expected
        assert uncached_greedy(model, prompt, 40, eos_id=eos) == expected


def test_deeper_deepseek_chains_also_match():
    """D = 2, 3: module k reads the token module k-1 drafted; caches roll back correctly."""
    for depth in (2, 3):
        model = random_model(objective("deepseek", depth=depth))
        copy = copy_model(objective("deepseek", depth=depth))
        for prompt in PROMPTS.values():
            assert decode(model, prompt, 25, speculative=True).tokens == decode(model, prompt, 25).tokens
            p = [t % 16 for t in prompt]
            assert decode(copy, p, 25, speculative=True).tokens == decode(copy, p, 25).tokens


@pytest.mark.parametrize("kind,fields", [("meta", {"n": 4}), ("deepseek", {"depth": 3})])
def test_tokens_per_step_when_every_draft_is_right(kind, fields):
    """The copy model repeats the last token, and so does every draft: all accepted, so a
    step yields n tokens until the budget caps the drafts (prefill: 1 token, 1 step)."""
    model = copy_model(objective(kind, **fields))
    for max_new, steps in ((13, 4), (10, 4), (4, 2), (1, 1)):  # 13 = 1 + 4 + 4 + 4; 10 = 1 + 4 + 4 + 1
        out = decode(model, [2, 7], max_new, speculative=True)
        assert out.tokens == [7] * max_new and out.steps == steps, max_new


def test_compare_decoders_reports_the_format():
    model = trained_model("meta4")
    prompts = [phrase_corpus(8, seed).tolist() for seed in range(3)]
    report = compare_decoders(model, prompts, 12, eos_id=None)
    assert set(report) == {"tokens_per_step", "speedup", "identical", "prompts", "new_tokens", "plain_s",
                           "speculative_s", "per_prompt"}  # fmt: skip
    assert report["identical"] is True and report["prompts"] == 3 and report["new_tokens"] == 36
    assert report["per_prompt"]["new_tokens"] == [12, 12, 12]  # per prompt: the units a comparison resamples
    assert 36 / sum(report["per_prompt"]["steps"]) == pytest.approx(report["tokens_per_step"])
    assert 1.0 < report["tokens_per_step"] <= 4.0
    assert report["speedup"] == pytest.approx(report["plain_s"] / report["speculative_s"], rel=1e-3)


def test_stp_has_nothing_to_draft_with():
    for objective_cfg in (objective("stp"), objective("meta", n=1)):
        with pytest.raises(NotImplementedError, match="no extra depths"):
            decode(random_model(objective_cfg), [1, 2], 3, speculative=True)
    with pytest.raises(ValueError, match="non-empty prompt"):
        decode(random_model(objective("stp")), [], 3)
