"""Evaluation: offline HumanEval/MBPP through lm-eval, the sandbox, pass@k and MTP analyses."""
