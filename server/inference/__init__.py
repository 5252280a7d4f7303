"""Where windows run: the backend seam, onnxruntime runners, the batching scheduler, and
the Triton client with its contract.
"""
