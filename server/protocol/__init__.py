"""The Sans-I/O protocol layer: wire messages, bounded client JSON, the error table and close
codes, each session's conversation (v1, Vosk) as a state machine, and upgrade admission.

Imports no numpy, asyncio, websockets, onnxruntime or engine module (tests/test_layout.py).
"""
