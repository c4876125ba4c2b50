"""Compute plans: what an arm costs (parameters, FLOPs, tokens) and the matched-compute solver, and their table."""
