"""Benchmarks through the websocket server: capacity against the engine alone, the frontend
with an instant model, memory per connection and the soak."""
