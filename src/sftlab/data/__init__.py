"""Data: the canonical record, format readers/writers, validation, curation steps, synthesis."""
