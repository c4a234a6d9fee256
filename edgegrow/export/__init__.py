"""Export grown models to ONNX, TFLite (float and int8) and a C array, verified in the real runtimes."""
from .exporter import FORMATS, ExportError, ExportResult, export_checkpoint, export_model, parse_formats

__all__ = ["FORMATS", "ExportError", "ExportResult", "export_checkpoint", "export_model", "parse_formats"]
