"""``asr-triton``: a real Triton server on this machine (pytriton), its launcher and the
serving program that runs under Debian's Python.
"""
