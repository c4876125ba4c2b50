"""Benchmark scoring: HumanEval/MBPP data, lm-eval tasks and backends, protocols, pass@k, the sandbox's callers."""
