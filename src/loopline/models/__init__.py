"""Models for users: `log_model`, `load` by reference, export to ONNX."""
