"""The wire: what a connection does with its bytes before a session or the HTTP API sees them
(bounded output and handshakes, frames split ahead of websockets, a POST served as HTTP)."""
