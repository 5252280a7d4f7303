"""Stream a microphone to the server until told to stop.

The input stream (``sounddevice.InputStream`` by default, any object with ``start``/``stop``/
``close`` from an :class:`InputFactory`) runs at the device's own default rate and calls back on
its audio thread. :class:`FrameQueue` hands each block to the event loop with
``loop.call_soon_threadsafe`` into a bounded queue; when the queue is full (the network or the
server is behind) the block is dropped and counted, never buffered without bound. Setting the
``stop`` event (Ctrl-C in the CLI) stops the input, sends the queued audio and ``stop``, and
waits for the server's last final and ``end``.

``sounddevice`` is imported only when a real device is used, so the rest of the client works
without PortAudio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from numpy.typing import NDArray

from streamasr.server.constants import Encoding

from .console import LiveView
from .messages import ClientError, End, FinalResult, StartSettings
from .ws import ConnectOptions, Session, open_session

log = logging.getLogger(__name__)

Device = int | str | None
"""A PortAudio device index or (part of) its name; None for the system default input."""


class AudioInput(Protocol):
    """What the client needs of an input stream (``sounddevice.InputStream`` has it)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class InputCallback(Protocol):
    """``sounddevice``'s input callback: a (frames, channels) block, called on the audio thread."""

    def __call__(self, indata: NDArray[Any], frames: int, time: Any, status: Any) -> None: ...


class InputFactory(Protocol):
    """Opens an input stream with ``sounddevice.InputStream``'s keyword arguments."""

    def __call__(
        self,
        *,
        samplerate: float,
        channels: int,
        dtype: str,
        device: Device,
        blocksize: int,
        callback: InputCallback,
    ) -> AudioInput: ...


class MicError(ClientError):
    """The audio device could not be opened or queried."""


def sounddevice_input(
    *,
    samplerate: float,
    channels: int,
    dtype: str,
    device: Device,
    blocksize: int,
    callback: InputCallback,
) -> AudioInput:
    """A ``sounddevice.InputStream`` (PortAudio)."""
    sd = _sounddevice()
    try:
        stream: AudioInput = sd.InputStream(
            samplerate=samplerate,
            channels=channels,
            dtype=dtype,
            device=device,
            blocksize=blocksize,
            callback=callback,
        )
    except (sd.PortAudioError, ValueError) as exc:
        raise MicError(f"cannot open input device {device!r}: {exc}") from exc
    return stream


def default_sample_rate(device: Device) -> int:
    """The input device's own default rate (what it records at without resampling)."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, "input")
    except (sd.PortAudioError, ValueError) as exc:
        raise MicError(f"no input device {device!r}: {exc}") from exc
    return round(float(info["default_samplerate"]))


def list_devices() -> str:
    """PortAudio's device table (``>`` marks the default input, ``<`` the default output)."""
    return str(_sounddevice().query_devices())


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise MicError(
            f"the microphone client needs sounddevice and PortAudio (libportaudio2): {exc}"
        ) from exc
    return sounddevice


class FrameQueue:
    """Blocks from the audio thread to the event loop, at most ``maxsize`` waiting.

    :meth:`callback` runs on the audio thread and only copies the block and schedules
    :meth:`_put` on the loop; a block that finds the queue full is dropped and counted.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self._loop = loop
        self._maxsize = maxsize
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.received = 0
        self.dropped = 0
        self.overflows = 0
        """Blocks the device itself flagged (input overflow: the callback ran late)."""

    def callback(self, indata: NDArray[Any], frames: int, time: Any, status: Any) -> None:
        data = indata.tobytes()  # a C-order copy: PortAudio reuses its buffer
        with contextlib.suppress(RuntimeError):  # the loop closed under a late callback
            self._loop.call_soon_threadsafe(self._put, data, bool(status))

    def close(self) -> None:
        """No more blocks: :meth:`chunks` ends once the queued ones are out (call on the loop)."""
        self._queue.put_nowait(None)

    def _put(self, data: bytes, flagged: bool) -> None:
        self.received += 1
        if flagged:
            self.overflows += 1
            log.warning("the audio device reported an overflow (%d so far)", self.overflows)
        if self._queue.qsize() >= self._maxsize:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 50 == 0:
                log.warning(
                    "sending is behind the microphone: dropped %d block(s) so far", self.dropped
                )
            return
        self._queue.put_nowait(data)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Blocks in order until :meth:`close`."""
        while True:
            data = await self._queue.get()
            if data is None:
                return
            yield data


@dataclass(frozen=True)
class MicOptions:
    """Which device and how its audio is sent."""

    device: Device = None
    sample_rate: int | None = None
    """Recording rate; None uses the device's default rate."""
    encoding: Encoding = "s16le"
    block_seconds: float = 0.02
    """Audio per callback block (and per binary frame)."""
    queue_blocks: int = 250
    """Blocks that may wait for the network before new ones are dropped (5 s at 20 ms)."""
    endpoint_ms: int | None = None
    """Silence that ends a segment; None: the server's setting."""

    def __post_init__(self) -> None:
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if not 0.001 <= self.block_seconds <= 1:
            raise ValueError(f"block_seconds must be in [0.001, 1], got {self.block_seconds}")
        if self.queue_blocks < 1:
            raise ValueError(f"queue_blocks must be at least 1, got {self.queue_blocks}")


@dataclass
class MicResult:
    """How a microphone session went."""

    sample_rate: int
    audio_seconds: float = 0.0
    finals: list[FinalResult] = field(default_factory=list)
    blocks: int = 0
    dropped: int = 0


async def run_mic(
    connect: ConnectOptions,
    options: MicOptions,
    view: LiveView,
    stop: asyncio.Event,
    open_input: InputFactory = sounddevice_input,
) -> MicResult:
    """Stream the microphone until ``stop`` is set; results go to ``view``."""
    rate = options.sample_rate or default_sample_rate(options.device)
    settings = StartSettings(rate, options.encoding, channels=1, endpoint_ms=options.endpoint_ms)
    result = MicResult(sample_rate=rate)
    loop = asyncio.get_running_loop()
    queue = FrameQueue(loop, options.queue_blocks)
    # Opened (not started) before connecting: a missing device fails before the network does.
    stream = open_input(
        samplerate=rate,
        channels=1,
        dtype="int16" if options.encoding == "s16le" else "float32",
        device=options.device,
        blocksize=max(1, round(rate * options.block_seconds)),
        callback=queue.callback,
    )
    try:
        async with open_session(connect, settings) as session:
            log.info("recording at %d Hz from device %r", rate, options.device)
            end = await _record(session, stream, queue, view, stop)
            result.audio_seconds = end.audio_seconds
    finally:
        stream.stop()
        stream.close()
        view.close()
        result.finals = list(view.finals)
        result.blocks = queue.received
        result.dropped = queue.dropped
    if result.dropped:
        log.warning("dropped %d of %d audio blocks", result.dropped, result.blocks)
    return result


async def _record(
    session: Session, stream: AudioInput, queue: FrameQueue, view: LiveView, stop: asyncio.Event
) -> End:
    """Run the input into the session until ``stop``, then flush: queued blocks, stop, end."""

    async def stop_input() -> None:
        await stop.wait()
        log.info("stopping: sending the remaining audio and stop")
        # stop() returns once no callback runs any more; the blocks those callbacks scheduled
        # reach the loop before this coroutine resumes, so close() comes after all of them.
        await asyncio.to_thread(stream.stop)
        queue.close()

    stopper = asyncio.create_task(stop_input(), name="asr-mic-stop")
    try:
        stream.start()
        return await session.run(queue.chunks(), view.on_result)
    finally:
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
