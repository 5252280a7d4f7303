"""The Triton benchmark's setups: how a setup serves the export (``local:int8``,
``triton:int8:w2`` ...), its server arguments and the stream windows it gives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamasr.server.decoding.beam import LM_WINDOWS

from ..service import capacity as service_bench

DEFAULT_SETUPS = ("local:int8", "triton:int8:w2")
MAX_CONNECTIONS = 256
"""``asr-server --max-connections`` of every setup (the default, 64, would cap the levels)."""


@dataclass(frozen=True)
class Setup:
    """One way to serve the export: where the model runs, and how many processes."""

    inference: str
    """``local`` or ``triton``."""
    precision: str
    workers: int = 1
    """Frontend processes (``asr-server --workers``)."""
    instances: int = 1
    """``asr-triton --instances`` (fp32/fp16 model instances; int8 always has 2)."""
    threads: int = 1
    """``asr-triton --threads`` (onnxruntime intra-op threads per instance)."""
    lm: bool = False
    """``asr-server --lm LM`` (beam search with the n-gram LM, at the LM windows)."""

    @property
    def label(self) -> str:
        suffix = ", LM" if self.lm else ""
        if self.inference == "local":
            return f"local {self.precision}, {self.workers} process(es){suffix}"
        instances = 2 if self.precision == "int8" else self.instances
        return (
            f"Triton {self.precision} ({instances} instance(s) x {self.threads} thread(s)), "
            f"{self.workers} frontend(s){suffix}"
        )

    def server_args(
        self, folder: Path, triton_url: str | None, lm: Path | None = None
    ) -> list[str]:
        args = service_bench.server_args(folder, self.precision)
        args += ["--max-connections", str(MAX_CONNECTIONS)]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        if triton_url is not None:
            args += ["--inference", triton_url]
        if self.lm:
            if lm is None:
                raise ValueError(f"setup {self.label!r} needs an LM file")
            args += ["--lm", str(lm)]
        return args

    def triton_args(self) -> list[str]:
        args = ["--precision", self.precision, "--instances", str(self.instances)]
        return [*args, "--threads", str(self.threads)]


def parse_setup(text: str) -> Setup:
    """``local:int8``, ``local:fp32:w2``, ``local:int8:lm``, ``triton:int8:w2``,
    ``triton:fp32:w2:i2:t1``."""
    inference, _, rest = text.partition(":")
    if inference not in ("local", "triton"):
        raise ValueError(f"setup {text!r}: starts with local or triton")
    precision, *knobs = rest.split(":") if rest else ["int8"]
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"setup {text!r}: precision fp32, fp16 or int8")
    values = {"w": 2 if inference == "triton" else 1, "i": 1, "t": 1}
    lm = "lm" in knobs
    for knob in (k for k in knobs if k != "lm"):
        if knob[:1] not in values or not knob[1:].isdigit() or int(knob[1:]) < 1:
            raise ValueError(f"setup {text!r}: knob {knob!r} is not wN, iN, tN (N >= 1) or lm")
        if inference == "local" and knob[0] != "w":
            raise ValueError(f"setup {text!r}: iN and tN are Triton's knobs")
        values[knob[0]] = int(knob[1:])
    return Setup(inference, precision, values["w"], values["i"], values["t"], lm)


def windows(setup: Setup, args: Sequence[str]) -> dict[str, float]:
    """The windows (left, hop, lookahead s) the server gives a stream of ``setup``: its
    configuration's, and with an LM :data:`LM_WINDOWS`' for the fields nobody chose."""
    options = service_bench.engine_settings(args)[1]
    values = {"left_s": options.left_s, "hop_s": options.hop_s, "lookahead_s": options.lookahead_s}
    if setup.lm and options.preset is None:
        values |= {n: v for n, v in LM_WINDOWS.to_dict().items() if n in options.from_model}
    return values
