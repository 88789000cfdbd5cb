"""OpenAI-compatible serving of a model, adapter or run folder (FastAPI + uvicorn, one generation worker)."""

from sftlab.serve.app import create_app
from sftlab.serve.runner import serve

__all__ = ["create_app", "serve"]
