"""The engine of one exported model: its manifest and the inference backend its streams share
(onnxruntime in this process behind the batching scheduler, or a Triton pool)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from streamasr.server.decoding.beam import stream_windows
from streamasr.server.decoding.factory import Decoders, stream_decoder
from streamasr.server.engine.captions import Captioner
from streamasr.server.engine.preset_rules import with_rule_presets
from streamasr.server.engine.punctuation import Punctuation
from streamasr.server.engine.stream import Clock, Stream
from streamasr.server.engine.vad import SileroVad
from streamasr.server.engine.windows import SlidingWindower, WholeWindower, Windower, WindowPlan
from streamasr.server.errors import StreamConfigError
from streamasr.server.inference.backend import InferenceBackend, open_backend
from streamasr.server.inference.config import InferenceConfig
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.inference.scheduler import SchedulerConfig
from streamasr.server.manifest import Manifest, read_manifest
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.decoding import DecoderSettings
from streamasr.server.options.stream import StreamOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """How one model is run: device, precision and threads, and how windows are batched."""

    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    scheduler: SchedulerConfig | None = None
    """None: the defaults, with one worker per ``intra_op_threads`` CPU cores on CPU (one
    worker when onnxruntime may use every core) and one worker on CUDA."""
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    """Where windows run: ``local`` (the runtime and scheduler settings above) or a Triton pool
    (no onnxruntime session in this process; ``scheduler.max_queue`` bounds its requests)."""
    stream: StreamOptions | None = None
    """The server's stream options, checked against the manifest when the model loads (an
    unknown ``--preset`` or ``--gate silero`` without a VAD file fails the load, not each
    session)."""
    decoding: DecoderSettings = field(default_factory=DecoderSettings)
    """Greedy, or beam search with an LM and hotwords (over the manifest's ``decoder``)."""
    punctuation: Path | None = None
    """A punctuation model (``asr-export --punctuation`` output); None: the export's own
    ``punctuation/`` folder if it has one, else no captions."""


class Engine:
    """Loads a model folder (``asr-export`` output) and opens streams on it.

    Use as a context manager, or call :meth:`close`: it runs what is queued and joins the
    scheduler's threads.
    """

    def __init__(self, folder: Path | str, config: EngineConfig | None = None) -> None:
        self.folder = Path(folder)
        self.config = config or EngineConfig()
        self.manifest: Manifest = with_rule_presets(read_manifest(self.folder))
        """The manifest, with the rule presets if its export predates them (.preset_rules)."""
        self.scheduler: InferenceBackend = open_backend(
            self.folder,
            self.manifest,
            self.config.runtime,
            self.config.scheduler,
            self.config.inference,
        )
        """Where streams submit windows: the local batching scheduler or the Triton backend."""
        self.vad: SileroVad | None = SileroVad.load(self.folder, self.manifest)
        """Silero VAD of the export (its ``vad`` entry), shared by the streams' gates."""
        self.decoders = Decoders(self.manifest, self.folder, self.config.decoding)
        """Makes each stream's CTC decoder (loads the LM once)."""
        self.punctuation = Punctuation.find(self.config.punctuation, self.folder)
        """Case and punctuation for the streams' captions, when a model is there."""
        if self.config.stream is not None:
            self.stream(options=self.config.stream)  # raises what every session would
        self.scheduler.start()

    @property
    def available(self) -> bool:
        """Whether windows can run now (False while a Triton pool is unreachable)."""
        return self.scheduler.available

    def stream(
        self,
        fmt: AudioFormat | None = None,
        options: StreamOptions | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> Stream:
        """A new streaming recognition stream; ``clock`` measures its lag (tests fake it).
        Without ``options``: the model's windows (its manifest's) and the ``auto`` gate."""
        return _make_stream(
            self.manifest,
            self.scheduler,
            fmt or AudioFormat(),
            options or StreamOptions.model_defaults(),
            clock=clock,
            vad=self.vad,
            decoders=self.decoders,
            punctuation=self.punctuation,
        )

    def offline_stream(
        self, fmt: AudioFormat | None = None, options: StreamOptions | None = None
    ) -> Stream:
        """A stream that decodes everything it is fed as one window at :meth:`Stream.finish`:
        the full-context reference (endpointing still splits segments; no gate)."""
        return _make_stream(
            self.manifest,
            self.scheduler,
            fmt or AudioFormat(),
            options or StreamOptions(),
            offline=True,
            decoders=self.decoders,
            punctuation=self.punctuation,
        )

    def close(self) -> None:
        self.scheduler.stop()
        self.decoders.close()
        if self.punctuation is not None:
            self.punctuation.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_stream(
    manifest: Manifest,
    scheduler: InferenceBackend,
    fmt: AudioFormat,
    options: StreamOptions,
    *,
    offline: bool = False,
    clock: Clock = time.monotonic,
    vad: SileroVad | None = None,
    decoders: Decoders | None = None,
    punctuation: Punctuation | None = None,
) -> Stream:
    """A streaming stream, or with ``offline`` the whole-utterance reference on the same path;
    ``clock`` is what its lag (audio received against time passed) is measured with; ``vad``
    the engine's Silero VAD (for a Silero gate). The windows are settled against the manifest
    first (:func:`~.presets.resolve_windows`)."""
    spec = manifest.input
    punctuate = options.punctuate if options.punctuate is not None else punctuation is not None
    if punctuate and punctuation is None:
        raise StreamConfigError("punctuate", True, "this server has no punctuation model")
    captioner = Captioner(punctuation.batcher.label) if punctuate and punctuation else None
    decoder = stream_decoder(decoders, manifest, options.decoding)
    w = stream_windows(decoder, options, manifest.streaming)
    options = replace(
        options, left_s=w.left_s, hop_s=w.hop_s, lookahead_s=w.lookahead_s, from_model=frozenset()
    )
    windower: Windower
    if offline:
        windower = WholeWindower(spec)
        options = replace(options, gate=None)
    else:
        windower = SlidingWindower(
            WindowPlan.from_seconds(
                options.left_s, options.hop_s, options.lookahead_s, manifest.input
            ),
            spec,
            manifest.name,
        )
    return Stream(
        manifest,
        scheduler,
        fmt=fmt,
        options=options,
        windower=windower,
        decoder=decoder,
        clock=clock,
        vad=vad,
        captioner=captioner,
        caption_pool=punctuation.pool if punctuation else None,
    )
