"""The model: a Llama-style trunk, the MTP objectives on top of it, and Hugging Face export."""
