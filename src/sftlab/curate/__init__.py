"""Curation: ordered steps over records (clean, filter, dedup, score, select), with exact accounting.

``pipeline`` runs the steps and publishes kept/rejects/report; ``steps`` holds
each step; ``report`` renders what a run recorded; ``judge`` and ``embeddings``
are the model-backed signals the steps use.
"""
