"""Data: corpus sources, decontamination, tokenizer, token shards and the deterministic loader."""
