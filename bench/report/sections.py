"""The benchmark report's sections: the inputs they share (Context) and one runner per section
that measures it and returns its raw figures (plots drawn into the output folder)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import fixtures
from ..common.machine import Machine
from ..export import bench as export_bench
from ..export import speed as export_speed
from ..punctuation import section as punctuation_section
from ..service import capacity as service_bench
from ..service import frontend_sweep
from ..stream import accuracy as stream_accuracy
from ..stream import grid as stream_grid
from ..stream import lm as lm_bench
from ..stream import noise
from ..triton import measure as triton_measure
from ..triton import process as triton_process
from ..triton import setup as triton_setup
from . import plots
from .modes import DEFAULTS, Mode


@dataclass
class Context:
    """Inputs shared by the sections."""

    shared: Path
    work: Path
    out: Path
    mode: Mode
    machine: Machine
    tts: list[fixtures.Utterance] = field(default_factory=list)
    tts_files: list[Path] = field(default_factory=list)
    human: list[fixtures.Utterance] = field(default_factory=list)

    @property
    def fixture(self) -> Path:
        return self.shared / "models" / "tts-en-ctc-small"


def human_dir(shared: Path) -> Path:
    return shared / "speech" / "dev" / "human"


def load_inputs(ctx: Context) -> None:
    tts_dir = ctx.shared / "speech" / "dev" / "tts"
    ctx.tts = fixtures.load_set(tts_dir)[: ctx.mode.tts]
    ctx.tts_files = [path for path, _ in fixtures.dev_set(tts_dir)][: ctx.mode.tts]
    ctx.human = fixtures.load_set(human_dir(ctx.shared))[: ctx.mode.human]


def fidelity(ctx: Context) -> dict[str, Any]:
    """Offline WER/CER per runtime and streaming WER/agreement per precision."""
    from streamasr.export.evaluate import transcribe_offline

    from ..common.scoring import cer, wer

    folder = fixtures.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    refs = [r for _, r in ctx.tts]
    texts = transcribe_offline(str(ctx.fixture), folder, ctx.tts_files)
    offline = {
        runtime: {"wer": wer(refs, hyps).rate, "cer": cer(refs, hyps).rate}
        for runtime, hyps in texts.items()
    }
    streaming = stream_accuracy.fidelity_figures(folder, ctx.tts, ctx.human, ("fp32", "int8"))
    if ctx.machine.cuda:
        streaming |= {
            f"{p} (CUDA)": f
            for p, f in stream_accuracy.fidelity_figures(
                folder, ctx.tts, ctx.human, ("fp16",), device="cuda"
            ).items()
        }
    return {
        "utterances": {"tts": len(ctx.tts), "human": len(ctx.human)},
        "offline": offline,
        "streaming": streaming,
    }


def grid(ctx: Context) -> stream_grid.GridFigures:
    folder = fixtures.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    figures = stream_grid.grid_figures(folder, ctx.tts, ctx.mode.grid)
    plots.latency_accuracy(figures, DEFAULTS, ctx.out / "latency_accuracy.png")
    return figures


def speed(ctx: Context) -> dict[str, Any]:
    signal = export_bench.test_signal(ctx.mode.speed_seconds, human_dir(ctx.shared))
    results = []
    for name in ctx.mode.speed_configs:
        arch = fixtures.architecture(ctx.shared, name)
        result = export_bench.bench_config(
            name, signal, ctx.mode.speed_repeats, arch=arch, profile=ctx.mode.profile
        )
        results.append(result.to_dict())
    figures = {
        "seconds": ctx.mode.speed_seconds,
        "repeats": ctx.mode.speed_repeats,
        "threads": export_speed.THREADS,
        "results": results,
    }
    plots.offline_speed(figures, ctx.out / "offline_speed.png")
    return figures


def capacity(ctx: Context) -> service_bench.CapacityFigures:
    precision = "fp16" if ctx.machine.cuda else "int8"
    folder = fixtures.export_random(
        ctx.shared, ctx.work, ctx.mode.capacity_model, ("fp32", precision)
    )
    figures = service_bench.measure_capacity(
        folder,
        service_bench.dev_audio(ctx.shared),
        ctx.mode.capacity,
        ctx.work,
        precision=precision,
    )
    figures["model"] = ctx.mode.capacity_model
    plots.capacity(figures, ctx.out / "capacity.png")
    return figures


def triton(ctx: Context) -> dict[str, Any]:
    """Triton on CPU against the local backend: the capacity section's model and levels."""
    unavailable = triton_process.triton_unavailable()
    if unavailable is not None:
        reason = f"no Triton interpreter: {unavailable}"
        print(f"section triton skipped: {reason}", flush=True)
        return {"skipped": reason}
    setups = [triton_setup.parse_setup(s) for s in triton_setup.DEFAULT_SETUPS]
    folder = fixtures.export_random(ctx.shared, ctx.work, ctx.mode.capacity_model)
    audio = service_bench.dev_audio(ctx.shared)
    figures = triton_measure.measure(folder, audio, ctx.mode.capacity, ctx.work / "triton", setups)
    figures["model"] = ctx.mode.capacity_model
    return figures


def frontend(ctx: Context) -> frontend_sweep.FrontendFigures:
    folder = fixtures.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    audio = service_bench.dev_audio(ctx.shared)
    plan = frontend_sweep.PLANS[ctx.mode.name]
    figures = frontend_sweep.measure(folder, audio, plan, ctx.work / "frontend")
    plots.frontend(figures, ctx.out / "frontend.png")
    return figures


def noise_section(ctx: Context) -> dict[str, Any]:
    folder = fixtures.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    return noise.measure(folder, ctx.tts, ctx.human)


def lm(ctx: Context) -> dict[str, Any]:
    return lm_bench.measure(ctx.shared, ctx.work, ctx.tts)


def punctuation(ctx: Context) -> Mapping[str, object]:
    return punctuation_section.measure(ctx.shared, ctx.work, ctx.tts, ctx.mode.punctuation)


SectionRun = Callable[[Context], Mapping[str, object]]
"""A section's runner: its raw figures (each section's own type, written to JSON as they are)."""

SECTION_RUNS: dict[str, SectionRun] = {
    "fidelity": fidelity,
    "grid": grid,
    "speed": speed,
    "capacity": capacity,
    "triton": triton,
    "frontend": frontend,
    "lm": lm,
    "noise": noise_section,
    "punctuation": punctuation,
}
