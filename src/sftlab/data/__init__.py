"""Data: the canonical record, format readers and writers, sources, validation and repair."""
