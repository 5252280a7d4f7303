"""The serving side: manifest, features, streaming engine, websocket service (no torch)."""
