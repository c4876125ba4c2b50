"""MTP analyses of a trained model on held-out data: per-position loss, its trajectory, canonical-solution NLL, references, collapse, acceptance, speculative decoding."""
