"""sftlab: supervised fine-tuning of LLMs from raw data to an evaluated model."""

__version__ = "0.1.0"
