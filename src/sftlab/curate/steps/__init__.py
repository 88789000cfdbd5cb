"""Curation steps: one file per family; every step sees each record once and says keep or why not."""
