"""The serving side: manifest reader, features, streaming engine and websocket service (no torch)."""
