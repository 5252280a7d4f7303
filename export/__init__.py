"""Checkpoint to validated ONNX (fp32, fp16, int8) with a manifest. Needs the `export` extra."""
