"""`harness plan` says how many benchmark prompts do not fit the trained context."""

from __future__ import annotations

from harness.data.prepare import prepare_data
from harness.eval.benchmarks.prompt_fit import prompt_fit
from harness.recipe import load_recipe

RECIPE = """\
recipe_version: 1
name: fit
model: {{stp_layers: 2, d_model: 16, n_heads: 2, n_kv_heads: 1, ffn_hidden: 32, vocab_size: 512, seq_len: {S}}}
data: {{source: {{kind: stdlib, max_bytes: 150000}}, val_fraction: 0.1}}
train: {{steps: 1, global_batch_size: 2, micro_batch_size: 2}}
eval: {{max_gen_toks: 16}}
"""


def test_counts_need_the_tokenizer_and_follow_the_context(write, tmp_path):
    short = load_recipe(write("short.yaml", RECIPE.format(S=64)))
    assert prompt_fit(short, tmp_path)[0].endswith("not checked yet (no tokenizer; `harness data prepare RECIPE` builds it)")
    prepare_data(short.data, vocab_size=512, seq_len=64, base_dir=tmp_path)
    humaneval, mbpp = prompt_fit(short, tmp_path)
    assert humaneval.startswith("warning: ") and " of 164 humaneval prompts" in humaneval
    assert mbpp.startswith("warning: 500 of 500 mbpp prompts")  # 3-shot prompts are hundreds of tokens
    long = load_recipe(write("long.yaml", RECIPE.format(S=16384)))
    assert all("every prompt fits S=16384 with 16 generated tokens" in line for line in prompt_fit(long, tmp_path))


def test_plan_prints_the_check(write, cli):
    result = cli("plan", write("r.yaml", RECIPE.format(S=64)))
    assert result.exit_code == 0 and "trained context S=64" in " ".join(result.output.split())
