"""The GPU capacity script (``python -m bench gpu_capacity prepare|run``)."""
