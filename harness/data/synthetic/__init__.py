"""Synthetic probe tasks as data sources (Gloeckle et al. 2024, Sec. 4): `induction` (stories
with two-token names) and `polynomial` (arithmetic in F_p[X]/(X^d)). See `corpus.py`."""
