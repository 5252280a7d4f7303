"""The asyncio service: websockets and plain HTTP on one port, each session's I/O driver,
bounded transports, metrics, log safety, the server's configuration and model store.
"""
