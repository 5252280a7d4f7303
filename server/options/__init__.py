"""Settings as plain values: a stream's options, decoding, gate, audio format, windows and
presets, and the one range check. The leaves every layer builds on (no numpy, no I/O).
"""
