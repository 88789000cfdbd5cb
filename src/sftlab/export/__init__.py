"""Export a trained model: merge LoRA into the base weights, or re-save the adapter alone."""

from sftlab.export.merge import ExportResult, export_model

__all__ = ["ExportResult", "export_model"]
