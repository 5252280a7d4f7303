"""The figures export_bench records: its options, the workload every runtime is timed on, and
what the export, each timed run and one whole architecture yielded."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class BenchOptions:
    """What the command line asked for."""

    configs: tuple[str, ...]
    out: Path
    seconds: float
    repeats: int


@dataclass(frozen=True)
class Workload:
    """The one input every runtime is timed on."""

    name: str
    """Graph input name (``input_values`` or ``input_features``)."""
    x: NDArray[np.float32]
    """Graph input with its batch axis of 1."""
    audio_s: float
    repeats: int
    signal: NDArray[np.float32]
    """The raw 16 kHz audio (what the transformers pipeline takes)."""


class ExportDict(TypedDict):
    """:class:`ExportFigures` in the reports."""

    total_s: float
    steps_s: dict[str, float]
    bytes: dict[str, int]
    failures: dict[str, str]


class SpeedDict(TypedDict):
    """:class:`Speed` in the reports: its fields, then the median and the real-time factor."""

    runtime: str
    runs_s: list[float]
    audio_s: float
    others_busy: list[float | None]
    retakes: int
    median_s: float
    x_real_time: float


class ConfigDict(TypedDict):
    """:class:`ConfigResult` in the reports (``speed`` section's ``results``)."""

    name: str
    params: int
    torch_attention: str
    export: ExportDict
    optimum_export_s: float | None
    speeds: dict[str, SpeedDict]
    splits: dict[str, dict[str, float]]
    peak_rss_mib: dict[str, float]


@dataclass
class ExportFigures:
    """What our export pipeline took and wrote."""

    total_s: float
    steps_s: dict[str, float]
    """The pipeline's own step timings."""
    bytes: dict[str, int]
    """Bytes per precision (graph plus external data), validated or not."""
    failures: dict[str, str] = field(default_factory=dict)
    """Precisions that failed validation, with the pipeline's reason."""


@dataclass(frozen=True)
class Sample:
    """One timed run."""

    seconds: float
    others_busy: float | None
    """Share of all CPUs that other processes used during the run (None off Linux)."""
    retakes: int = 0
    """Runs thrown away before this one because other processes were busy."""


@dataclass
class Speed:
    """Timed runs of one runtime on the test input."""

    runtime: str
    runs_s: list[float]
    audio_s: float
    others_busy: list[float | None]
    """Per run: share of the CPUs other processes used (noise in the figure)."""
    retakes: int

    @classmethod
    def of(cls, runtime: str, samples: list[Sample], audio_s: float) -> Speed:
        return cls(
            runtime,
            [s.seconds for s in samples],
            audio_s,
            [s.others_busy for s in samples],
            sum(s.retakes for s in samples),
        )

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def x_real_time(self) -> float:
        return self.audio_s / self.median_s

    def to_dict(self) -> SpeedDict:
        return {
            "runtime": self.runtime,
            "runs_s": list(self.runs_s),
            "audio_s": self.audio_s,
            "others_busy": list(self.others_busy),
            "retakes": self.retakes,
            "median_s": self.median_s,
            "x_real_time": self.x_real_time,
        }


@dataclass
class ConfigResult:
    """Every figure measured for one architecture."""

    name: str
    params: int
    torch_attention: str
    export: ExportFigures
    optimum_export_s: float | None
    speeds: dict[str, Speed]
    splits: dict[str, dict[str, float]]
    """Share of profiled node time per part of the network, per precision."""
    peak_rss_mib: dict[str, float]
    """Process peak RSS (cumulative over the run) after each stage."""

    def to_dict(self) -> ConfigDict:
        export = self.export
        return {
            "name": self.name,
            "params": self.params,
            "torch_attention": self.torch_attention,
            "export": {
                "total_s": export.total_s,
                "steps_s": dict(export.steps_s),
                "bytes": dict(export.bytes),
                "failures": dict(export.failures),
            },
            "optimum_export_s": self.optimum_export_s,
            "speeds": {k: s.to_dict() for k, s in self.speeds.items()},
            "splits": {k: dict(v) for k, v in self.splits.items()},
            "peak_rss_mib": dict(self.peak_rss_mib),
        }
