"""``sftlab ui``: a local web workbench over a folder of runs.

Server-rendered pages (FastAPI + Jinja2) with a little plain JavaScript shipped
in the package (no CDN): the runs and their reports, the live loss curve, and a
keyboard-driven review of curated records whose decisions go to an append-only
``<run>/review.jsonl`` that the ``review`` curation step applies on the next run.
"""
