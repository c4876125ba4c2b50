"""The model: a Llama-style trunk (`trunk.py`, shaped by `config.py`), the objectives on top
of it (`objectives/`), the two composed (`mtp_model.py`), decoding and Hugging Face export.

Importing this package imports nothing: `config.py` and the objectives' configs are read by
recipes without torch, the rest loads when a model is built.
"""
