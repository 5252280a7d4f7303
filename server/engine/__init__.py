"""The streaming engine: audio intake, windows, features, gates, endpointing and the stream that
ties them to a decoder and an inference backend. Samples in, events out; no sockets.
"""
