"""Teacher-driven data synthesis: Self-Instruct, Evol-Instruct and document-to-QA.

``run_synth(recipe)`` is the entry point; :mod:`.engine` talks to any
OpenAI-compatible endpoint with retries, a resumable cache and accounting.
"""

from sftlab.synth.runner import output_dir, run_synth

__all__ = ["output_dir", "run_synth"]
