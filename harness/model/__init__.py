"""The model: a Llama-style trunk, the MTP objectives on top of it, and Hugging Face export."""

from harness.model.model import MTPModel, build_model

__all__ = ["MTPModel", "build_model"]
