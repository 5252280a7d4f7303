"""``POST /v1/audio/transcriptions``: admission, the upload, the job through the engine.

The checks of a websocket upgrade apply before the body is read (token, origin, model loaded,
not draining), then the API's own: at most ``max_transcriptions`` jobs at once (429 with
``Retry-After``), at most ``max_upload_bytes`` of body (413), at most ``max_session_s`` of
audio (400). The file is decoded one block at a time (:mod:`.audiofile`) and fed to an engine
:class:`~streamasr.server.engine.stream.Stream` in 20 ms frames, exactly as ``asr-client transcribe
--stream`` feeds a file, so the transcript is the same; windows go through the same batching
scheduler as every websocket session's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import urlsplit

import h11

from streamasr.server.engine.engine import Engine
from streamasr.server.errors import AsrError
from streamasr.server.events import Final as FinalEvent
from streamasr.server.events import Segment
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.decoding import DecodingOptions
from streamasr.server.protocol.admission import Upgrade, authorized, origin_allowed
from streamasr.server.protocol.openai import formats, sse
from streamasr.server.protocol.openai.transcription import (
    TRANSCRIPTIONS_PATH,
    ApiError,
    TranscriptionRequest,
    not_found,
    parse_fields,
    too_large,
    too_many_jobs,
    unauthorized,
    unavailable,
)
from streamasr.server.protocol.openai.upload import FormUpload
from streamasr.server.service.audiofile import AudioFile, open_audio
from streamasr.server.service.config import ServerConfig
from streamasr.server.service.wire.exchange import HttpExchange, PeerGoneError

log = logging.getLogger(__name__)

READ_BLOCK_S: Final = 1
"""Seconds of audio decoded from the file at a time (then fed in 20 ms frames)."""
FRAMES_PER_S: Final = 50
"""Frames of 20 ms: what ``asr-client transcribe --stream`` feeds."""
RETRY_FULL_S: Final = 1
RETRY_LOADING_S: Final = 5

Readiness = Callable[[], tuple[Engine | None, str | None]]
"""The engine, or None and why (loading, failed, draining, inference pool down)."""


@dataclass
class Job:
    """What one transcription decoded so far."""

    segments: list[Segment]
    seconds: float = 0.0


class TranscriptionApi:
    """The HTTP API of one service: serves one :class:`HttpExchange` per call."""

    def __init__(self, config: ServerConfig, readiness: Readiness) -> None:
        self.config = config
        self._readiness = readiness
        self.active = 0
        """Transcriptions running now."""
        self.served = 0
        self._created = int(time.time())

    async def serve(self, exchange: HttpExchange) -> None:
        """Read the request, answer it, close; never raises for what the peer did."""
        try:
            try:
                request = await exchange.request()
                await self._answer(exchange, request)
            except ApiError as error:
                if not exchange.started:
                    await exchange.respond_error(error)
                else:
                    await exchange.send(sse.error(_error_payload(error)))
                    await exchange.end()
            await exchange.close()
        except (PeerGoneError, ConnectionError, h11.LocalProtocolError) as exc:
            log.info("HTTP request ended early: %s", exc)

    async def _answer(self, exchange: HttpExchange, request: h11.Request) -> None:
        url = urlsplit(request.target.decode("ascii", "replace"))
        method = request.method.decode("ascii", "replace")
        if method != "POST" or url.path != TRANSCRIPTIONS_PATH:
            raise not_found(method, url.path)
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        engine = self._admit(headers, url.query)
        length = headers.get("content-length")
        limit = self.config.max_upload_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_large(limit)
        if self.active >= self.config.max_transcriptions:
            raise too_many_jobs(self.config.max_transcriptions, RETRY_FULL_S)
        self.active += 1
        self.served += 1
        try:
            await self._transcribe(exchange, engine, headers.get("content-type", ""))
        finally:
            self.active -= 1

    def _admit(self, headers: Mapping[str, str], query: str) -> Engine:
        """The websocket upgrade's checks: token, origin, readiness."""
        token = self.config.auth_token
        upgrade = Upgrade(TRANSCRIPTIONS_PATH, query, headers.get("authorization", ""))
        if token is not None and not authorized(token, upgrade):
            raise unauthorized()
        origin = headers.get("origin")
        if not origin_allowed(origin, tuple(self.config.allowed_origins)):
            raise ApiError(403, f"Origin '{(origin or '')[:80]}' is not in --allowed-origins")
        engine, reason = self._readiness()
        if engine is None:
            retry = RETRY_LOADING_S if "load" in (reason or "") else RETRY_FULL_S
            raise unavailable(reason or "the model is not loaded", retry)
        return engine

    async def _transcribe(self, exchange: HttpExchange, engine: Engine, content_type: str) -> None:
        upload = FormUpload(content_type)
        try:
            async for chunk in exchange.body(self.config.max_upload_bytes):
                upload.write(chunk)
            fields, file = upload.finish()
            names = (engine.manifest.name, engine.folder.name)
            request = parse_fields(fields, names)
            audio = await asyncio.to_thread(open_audio, file, upload.filename)
            try:
                await self._run(exchange, engine, request, audio)
            finally:
                audio.close()
        finally:
            upload.close()

    async def _run(
        self,
        exchange: HttpExchange,
        engine: Engine,
        request: TranscriptionRequest,
        audio: AudioFile,
    ) -> None:
        limit = self.config.max_session_s
        if audio.duration is not None and audio.duration > limit:
            raise _too_long(audio.duration, limit)
        language = request.language or engine.manifest.language or "unknown"
        job = Job([])
        if not request.stream:
            async for _ in self._segments(engine, request, audio, job, exchange):
                pass
            result = formats.Result(tuple(job.segments), job.seconds, language, request.temperature)
            content_type, body = formats.render(
                result, request.response_format, request.granularities
            )
            await exchange.respond(200, content_type, body)
            return
        exchange.start(200, sse.CONTENT_TYPE, [("X-Accel-Buffering", "no")])
        texts: list[str] = []
        async for segment in self._segments(engine, request, audio, job, exchange):
            shown = segment.shown_text
            await exchange.send(sse.delta(shown if not texts else " " + shown))
            texts.append(shown)
        await exchange.send(sse.done(" ".join(texts)))
        await exchange.end()

    async def _segments(
        self,
        engine: Engine,
        request: TranscriptionRequest,
        audio: AudioFile,
        job: Job,
        exchange: HttpExchange,
    ) -> AsyncIterator[Segment]:
        """The file through an engine stream: each final segment as it is decoded."""
        options = self.config.stream_options
        if request.hotwords:
            options = replace(options, decoding=DecodingOptions(hotwords=request.hotwords))
        rate = audio.sample_rate
        try:
            stream = engine.stream(AudioFormat("f32le", rate, audio.channels), options)
        except AsrError as exc:
            raise ApiError(400, f"Cannot transcribe with these settings: {exc}") from None
        step = max(1, rate // FRAMES_PER_S)
        block = step * FRAMES_PER_S * READ_BLOCK_S
        limit = self.config.max_session_s
        try:
            while True:
                data = await asyncio.to_thread(audio.read, block)
                if data.shape[0] == 0:
                    break
                job.seconds += data.shape[0] / rate
                if job.seconds > limit:
                    raise _too_long(job.seconds, limit)
                samples = data if audio.channels == 2 else data[:, 0]
                for start in range(0, samples.shape[0], step):
                    if exchange.lost:
                        raise PeerGoneError("the peer closed the connection")
                    for event in await stream.feed_async(samples[start : start + step]):
                        if isinstance(event, FinalEvent):
                            job.segments.append(event.segment)
                            yield event.segment
            for event in await stream.finish_async():
                if isinstance(event, FinalEvent):
                    job.segments.append(event.segment)
                    yield event.segment
        except AsrError as exc:
            raise ApiError(500, f"Transcription failed: {exc}", kind="server_error") from None

    def models(self, engine: Engine | None) -> dict[str, object]:
        """The ``GET /v1/models`` payload."""
        from streamasr.server.protocol.openai.transcription import model_list

        names = [engine.manifest.name, engine.folder.name] if engine is not None else []
        return model_list(names, self._created)


def _too_long(seconds: float, limit: float) -> ApiError:
    return ApiError(
        400,
        f"Audio of {seconds:.0f} s is longer than {limit:g} s, the most this server transcribes"
        " (--max-session-seconds).",
        param="file",
        code="audio_too_long",
    )


def _error_payload(error: ApiError) -> dict[str, object]:
    return {
        "error": {
            "message": error.message,
            "type": error.kind,
            "param": error.param,
            "code": error.code,
        }
    }
