"""The OpenAI-compatible HTTP API on the websocket port (docs/clients.md, docs/protocol.md).

``POST /v1/audio/transcriptions`` and ``GET /v1/models``, answered by the same process, port and
TLS context as the websocket endpoints. Pure modules (no asyncio, no websockets):
:mod:`.http_api` (request fields, error bodies), :mod:`.formats` (json, text, srt, vtt,
verbose_json), :mod:`.sse` (Server-Sent Events), :mod:`.upload` (bounded multipart parsing),
:mod:`.audiofile` (decoding an uploaded file block by block). The asyncio layer:
:mod:`.exchange` (one HTTP/1.1 request with a body, over h11, on a connection taken from
websockets) and :mod:`.api` (admission, the job through the engine, the answer).
"""
