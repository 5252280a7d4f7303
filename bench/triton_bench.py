"""Streams held through a local Triton server on CPU against the local backend, same cores.

    python -m bench.triton_bench [--quick] [--model wav2vec2-base-960h] [--seconds S]
                                 [--setups local:int8 local:int8:lm triton:int8:w2 ...]
                                 [--levels N ...]
                                 [--shared ../shared] [--work DIR] [--out DIR]

Issue 10, item 6: the price of the network hop. Every *setup* is a way to serve the same export
(random weights at base-960h size by default, ``bench.stream_bench.export_random``):

* ``local:PRECISION[:wN]``: ``asr-server --model DIR --precision P [--workers N]``, onnxruntime in
  the frontend's own process (the embedded default);
* ``triton:PRECISION[:wN][:iN][:tN]``: ``asr-triton DIR --precision P [--instances N]
  [--threads N]`` (a real Triton 2.51 through pytriton, onnxruntime inside it; int8 unbatched
  with 2 instances, fp32 with Triton's dynamic batcher) and ``asr-server --inference
  triton://127.0.0.1:PORT --workers N`` (default 2) in front of it.

A ``:lm`` knob adds ``--lm LM`` to the server's command (issue 11: capacity with the LM beside
greedy): LM is the 4-gram ARPA file ``asr-lm text/ljspeech-train.txt --order 4 --model EXPORT``
builds (:func:`bench.lm_bench.lm_file`, once, under ``--work``), and the server's default LM
windows (0.64/2/0.64 s) apply, as users get them; each setup's clients start at phases spread
over its own hop.

The clients, the levels and the criterion are the service benchmark's
(:mod:`bench.service_bench`): real-time protocol-v1 clients in this process sending 20 ms s16le
frames of the human dev speech, start phases spread over one hop; a level holds when the p95
partial latency is within 1.5 s and no stream failed; each setup climbs from shares of the raw
onnxruntime int8 ceiling and bisects, and the setups' levels are interleaved one by one
(:func:`bench.service_bench.interleaved`) so that the host's drift hits them alike. Every
setup's processes are up for the whole run (idle ones cost next to nothing). The CPU column is
the whole setup's (the frontends' process tree, and Triton's with its Python-backend stubs) as a
share of all cores.

Goal: a Triton setup holds at least 85 % of the streams the local backend holds with the same
precision. The Triton interpreter (``.venv-triton``, ``$ASR_TRITON_PYTHON``; see docs/triton.md)
is required: without it the benchmark says why and measures nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server import triton_contract as tc
from streamasr.server.lm_decoder import LM_WINDOWS
from streamasr.server.manifest import read_manifest

from . import lm_bench, service_bench, stream_bench
from .frontend_sweep import tree_cpu
from .proc import cores, read_usage, tree_pids

log = logging.getLogger("bench.triton_bench")

DEFAULT_WORK = Path("/tmp/triton_bench")
RATIO_GOAL = 0.85
"""Issue 10: streams held through Triton on CPU over those held by the local backend."""
DEFAULT_SETUPS = ("local:int8", "triton:int8:w2")
FIXTURE = "fixture"
"""``--model fixture``: the trained fixture checkpoint (``tts-en-ctc-small``)."""
MOST = 120
"""Largest level of the sweep (the capacity section stops at 60: the fixture model goes past)."""
MAX_CONNECTIONS = 256
"""``asr-server --max-connections`` of every setup (the default, 64, would cap the levels)."""
TRITON_START_TIMEOUT_S = 180.0
TRITON_STOP_TIMEOUT_S = 60.0


# --- setups --------------------------------------------------------------------------------------


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


# --- the Triton process --------------------------------------------------------------------------


def triton_unavailable() -> str | None:
    """Why ``asr-triton`` cannot run here (no usable Triton interpreter), or None."""
    from streamasr.server.triton_local import TritonPythonError, check_python, find_python

    try:
        check_python(find_python(None))
    except TritonPythonError as exc:
        return exc.problem
    return None


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class TritonServer(service_bench.LoggedProcess):
    """``asr-triton FOLDER`` on free ports; ready once it logged ``serving NAME on grpc`` for its
    model. Stopped with SIGTERM (SIGKILL after 60 s)."""

    name = "asr-triton"
    stop_s = TRITON_STOP_TIMEOUT_S

    def __init__(self, folder: Path, setup: Setup, log_path: Path) -> None:
        self.grpc_port, http_port, metrics_port = free_ports(3)
        command = [sys.executable, "-m", "streamasr.server.triton_local", str(folder)]
        command += ["--grpc-port", str(self.grpc_port), "--http-port", str(http_port)]
        command += ["--metrics-port", str(metrics_port), *setup.triton_args()]
        super().__init__(command, log_path)
        self.model = tc.model_name(read_manifest(folder).name, setup.precision)

    @property
    def url(self) -> str:
        return f"triton://127.0.0.1:{self.grpc_port}"

    def _wait_ready(self) -> None:
        ready = f"serving {self.model} on grpc"
        deadline = time.monotonic() + TRITON_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready in self.log_text():
                log.info("asr-triton %d serving %s at %s", self.pid, self.model, self.url)
                return
            self._check_alive()
            time.sleep(0.2)
        raise RuntimeError(f"asr-triton did not serve {self.model} in {TRITON_START_TIMEOUT_S} s")


# --- one setup, one level ------------------------------------------------------------------------


@dataclass
class Running:
    """A setup's processes while the levels run."""

    setup: Setup
    server: service_bench.ServerProcess
    triton: TritonServer | None

    def pids(self) -> list[int]:
        return [self.server.pid] + ([self.triton.pid] if self.triton else [])

    def cpu_s(self) -> float:
        return sum(tree_cpu(pid)[0] for pid in self.pids())

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds of the setup's processes by role: ``frontends`` (the server's tree),
        and Triton's tree by executable name (``tritonserver``, the Python-backend stubs, the
        serving interpreter that runs onnxruntime)."""
        roles: dict[str, float] = {}
        for pid in tree_pids(self.server.pid):
            roles["frontends"] = roles.get("frontends", 0.0) + _cpu_s(pid)
        if self.triton is not None:
            for pid in tree_pids(self.triton.pid):
                role = "triton: " + _comm(pid)
                roles[role] = roles.get(role, 0.0) + _cpu_s(pid)
        return roles


def _cpu_s(pid: int) -> float:
    usage = read_usage(pid)
    return usage.cpu_s if usage is not None else 0.0


def _comm(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text(encoding="utf-8").strip()
    except OSError:
        return "?"


@contextmanager
def running(setup: Setup, folder: Path, work: Path, lm: Path | None = None) -> Iterator[Running]:
    slug = f"{setup.inference}-{setup.precision}-w{setup.workers}-i{setup.instances}"
    slug += f"-t{setup.threads}" + ("-lm" if setup.lm else "")
    with ExitStack() as stack:
        triton = None
        if setup.inference == "triton":
            triton = stack.enter_context(TritonServer(folder, setup, work / f"triton-{slug}.log"))
        args = setup.server_args(folder, triton.url if triton else None, lm)
        server = stack.enter_context(service_bench.ServerProcess(args, work / f"server-{slug}.log"))
        yield Running(setup, server, triton)


def level(
    run: Running, audio: NDArray[np.float32], n: int, seconds: float, hop_s: float
) -> dict[str, Any]:
    """The service benchmark's level, with the CPU of the whole setup (frontends and Triton)."""
    before, roles_before, started = run.cpu_s(), run.cpu_by_role(), time.perf_counter()
    figures = service_bench.service_level(
        run.server, stream_bench.client_pieces(audio, n, seconds), hop_s
    )
    wall = time.perf_counter() - started
    figures["frontend_cpu"] = figures.get("cpu", math.nan)
    figures["cpu"] = (run.cpu_s() - before) / wall / cores()
    audio_s = n * seconds
    figures["cpu_ms_per_audio_s"] = {
        role: (cpu - roles_before.get(role, 0.0)) / audio_s * 1000
        for role, cpu in run.cpu_by_role().items()
    }
    return figures


# --- the run -------------------------------------------------------------------------------------


def measure(
    folder: Path,
    audio: NDArray[np.float32],
    plan: service_bench.CapacityPlan,
    work: Path,
    setups: Sequence[Setup],
    *,
    lm: Path | None = None,
) -> dict[str, Any]:
    """Every setup up at once, their levels interleaved; streams held and the ratios."""
    unavailable = triton_unavailable() if any(s.inference == "triton" for s in setups) else None
    if unavailable is not None:
        log.warning("Triton benchmark skipped: %s", unavailable)
        return {"skipped": f"no Triton interpreter: {unavailable}"}
    options = service_bench.engine_settings(service_bench.server_args(folder, "int8"))[1]
    layout = stream_bench.LAYOUTS["2x1"]
    window = stream_bench.steady_window(options)
    ceiling_before = ceiling(folder, window, options.hop_s, layout, plan.ceiling_s)
    figures: dict[str, Any] = {
        "seconds": plan.seconds,
        "budget_s": service_bench.LATENCY_BUDGET_S,
        "cores": cores(),
        "ceiling_before": ceiling_before,
        "setups": {},
    }
    with ExitStack() as stack:
        runs = {s.label: stack.enter_context(running(s, folder, work, lm)) for s in setups}
        for label, run in runs.items():
            figures["setups"][label] = {
                **asdict(run.setup),
                "windows": windows(run.setup, run.setup.server_args(folder, None, lm)),
                "server_command": "asr-server " + " ".join(run.server.command[3:]),
                "triton_command": (
                    "asr-triton " + " ".join(run.triton.command[3:]) if run.triton else None
                ),
            }

        def path(run: Running) -> Callable[[int], dict[str, Any]]:
            hop_s = figures["setups"][run.setup.label]["windows"]["hop_s"]
            return lambda n: level(run, audio, n, plan.seconds, hop_s)

        try:
            figures["levels"] = service_bench.interleaved(
                {label: path(run) for label, run in runs.items()}, plan.levels(ceiling_before)
            )
        finally:
            for label, run in runs.items():
                figures["setups"][label]["server_log_tail"] = run.server.log_tail()
                if run.triton is not None:
                    figures["setups"][label]["triton_log_tail"] = run.triton.log_tail()
    figures["ceiling_after"] = ceiling(folder, window, options.hop_s, layout, plan.ceiling_s)
    figures["held"] = {label: service_bench.held(lv) for label, lv in figures["levels"].items()}
    figures["ratios"] = ratios(figures)
    figures["lm_ratios"] = lm_ratios(figures)
    return figures


def ceiling(
    folder: Path, window: int, hop_s: float, layout: stream_bench.Layout, duration_s: float
) -> float:
    """The raw onnxruntime int8 ceiling (streams) on steady windows."""
    raw = stream_bench.raw_ceiling(folder, window, hop_s, layout, duration_s)
    return float(max(v["streams"] for v in raw.values()))


def ratios(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each Triton setup against the local setup of its precision with one process (else the
    first local setup of that precision)."""
    setups, held = figures["setups"], figures["held"]
    out = {}
    for label, s in setups.items():
        if s["inference"] != "triton":
            continue
        local = [
            other
            for other, o in setups.items()
            if o["inference"] == "local"
            and o["precision"] == s["precision"]
            and o.get("lm", False) == s.get("lm", False)
        ]
        local.sort(key=lambda other: setups[other]["workers"] != 1)
        if not local or not held[local[0]]:
            continue
        ratio = held[label] / held[local[0]]
        out[label] = {
            "against": local[0],
            "ratio": ratio,
            "met": ratio >= RATIO_GOAL,
            **cost_ratio(figures.get("levels", {}), label, local[0]),
        }
    return out


def lm_ratios(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each LM setup against the same setup without the LM (greedy): streams held, CPU."""
    setups, held = figures["setups"], figures["held"]
    out = {}
    for label, s in setups.items():
        if not s.get("lm"):
            continue
        greedy = [
            other
            for other, o in setups.items()
            if not o.get("lm")
            and all(o[k] == s[k] for k in ("inference", "precision", "workers", "instances"))
            and o.get("threads") == s.get("threads")
        ]
        if not greedy or not held[greedy[0]]:
            continue
        out[label] = {
            "against": greedy[0],
            "ratio": held[label] / held[greedy[0]],
            **cost_ratio(figures.get("levels", {}), label, greedy[0]),
        }
    return out


def cost_ratio(levels: dict[str, dict[str, Any]], label: str, local: str) -> dict[str, Any]:
    """The setup's CPU over the local setup's at the levels (of 10 streams or more) both held:
    the median of the per-level ratios. On a host whose cores the setups have to themselves,
    capacity is CPU-bound and the streams held go as its inverse; on a shared host, a setup of
    more processes also takes a larger share of the cores."""
    mine, theirs = levels.get(label, {}), levels.get(local, {})
    common = [
        n
        for n in mine
        if n in theirs
        and int(n) >= 10
        and service_bench.holds(mine[n])
        and service_bench.holds(theirs[n])
        and theirs[n]["cpu"] > 0
    ]
    if not common:
        return {}
    per_level = {n: mine[n]["cpu"] / theirs[n]["cpu"] for n in common}
    return {"cpu_ratio": float(np.median(list(per_level.values()))), "cpu_ratio_levels": per_level}


# --- tables --------------------------------------------------------------------------------------


def summary_lines(figures: dict[str, Any]) -> list[str]:
    if "skipped" in figures:
        return [f"- Triton on CPU: skipped ({figures['skipped']})"]
    lines = [
        f"- raw onnxruntime int8 ceiling (2 threads x 1): {figures['ceiling_before']:.1f} "
        f"streams before, {figures['ceiling_after']:.1f} after"
    ]
    for label, held in figures["held"].items():
        line = f"- {label}: holds {held} streams (p95 partial <= {figures['budget_s']:g} s)"
        ratio = figures["ratios"].get(label)
        if ratio is not None:
            line += (
                f", {ratio['ratio']:.0%} of {ratio['against']} (goal >= {RATIO_GOAL:.0%}: "
                f"{'met' if ratio['met'] else 'NOT met'})"
            )
            if "cpu_ratio" in ratio:
                levels = ", ".join(ratio["cpu_ratio_levels"])
                line += (
                    f"; CPU per stream {ratio['cpu_ratio']:.2f}x the local setup's (median at "
                    f"levels {levels}), so {1 / ratio['cpu_ratio']:.0%} of its streams where "
                    "the setups' cores are their own and capacity is CPU-bound"
                )
        lm = figures.get("lm_ratios", {}).get(label)
        if lm is not None:
            line += f", {lm['ratio']:.0%} of {lm['against']}'s (greedy)"
            if "cpu_ratio" in lm:
                levels = ", ".join(lm["cpu_ratio_levels"])
                line += (
                    f"; CPU per stream {lm['cpu_ratio']:.2f}x greedy's (median at levels {levels})"
                )
        w = figures["setups"].get(label, {}).get("windows")
        if w:
            line += f"; windows {w['left_s']:g}/{w['hop_s']:g}/{w['lookahead_s']:g} s"
        lines.append(line)
    return lines


def commands_lines(figures: dict[str, Any]) -> list[str]:
    lines = []
    for label, s in figures.get("setups", {}).items():
        commands = [s["triton_command"], s["server_command"]] if s["triton_command"] else []
        commands = commands or [s["server_command"]]
        lines.append(f"- {label}: " + " + ".join(f"`{c}`" for c in commands))
    return lines


def markdown(figures: dict[str, Any]) -> str:
    if "skipped" in figures:
        return f"**Skipped**: {figures['skipped']}."
    return "\n".join(
        [
            f"Model: {figures.get('model', '?')} (an architecture with random weights, or "
            "`fixture`, the trained tts-en-ctc-small); the capacity section's "
            f"clients, levels and criterion ({figures['seconds']:g} s real-time streams, 20 ms "
            f"frames; a level holds at p95 partial latency <= {figures['budget_s']:g} s with no "
            "stream failed); the setups' levels interleaved in one run on the same "
            f"{figures['cores']} cores. CPU: the whole setup (frontends, Triton and its model "
            "stubs) as a share of all cores. Goal: Triton >= "
            f"{RATIO_GOAL:.0%} of the local backend's streams at the same precision "
            "(`python -m bench.triton_bench` runs it alone, `--setups` adds knobs).",
            "",
            *summary_lines(figures),
            "",
            "Setups:",
            "",
            *commands_lines(figures),
            "",
            service_bench.capacity_table(figures),
            "",
            "CPU by process, ms per audio second per stream:",
            "",
            cpu_table(figures),
        ]
    )


def cpu_table(figures: dict[str, Any]) -> str:
    """Each level's CPU per audio second per stream, by role (frontends, Triton's processes)."""
    roles = sorted(
        {
            r
            for levels in figures["levels"].values()
            for f in levels.values()
            for r in f.get("cpu_ms_per_audio_s", {})
        },
        key=lambda r: (r != "frontends", r),
    )
    lines = [
        "| path | streams | " + " | ".join(roles) + " | total |",
        "| --- | ---: | " + " | ".join("---:" for _ in roles) + " | ---: |",
    ]
    for label, levels in figures["levels"].items():
        for n, f in levels.items():
            ms = f.get("cpu_ms_per_audio_s", {})
            cells = [f"{ms[r]:.2f}" if r in ms else "" for r in roles]
            lines.append(f"| {label} | {n} | {' | '.join(cells)} | {sum(ms.values()):.2f} |")
    return "\n".join(lines)


def export(shared: Path, work: Path, model: str, precisions: tuple[str, ...]) -> Path:
    """The trained fixture checkpoint (``fixture``) or a random-weight architecture, exported."""
    if model == FIXTURE:
        return stream_bench.export_fixture(shared, work, precisions)
    return stream_bench.export_random(shared, work, model, precisions)


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s streams, coarse levels")
    parser.add_argument(
        "--model", default="wav2vec2-base-960h", help=f"architecture (random), or {FIXTURE}"
    )
    parser.add_argument("--seconds", type=float, help="audio per client (default 20, quick 10)")
    parser.add_argument("--setups", nargs="+", type=parse_setup, help=f"default: {DEFAULT_SETUPS}")
    parser.add_argument("--levels", type=int, nargs="+", help="exactly these levels (no sweep)")
    parser.add_argument("--shared", type=Path, default=service_bench.DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=service_bench.DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("bench.service_bench").setLevel(logging.INFO)
    seconds = args.seconds or (10.0 if args.quick else 20.0)
    plan = (
        service_bench.CapacityPlan(seconds, first=(0.0, 0.6), step=0.2, refine=3, most=MOST)
        if args.quick
        else service_bench.CapacityPlan(seconds, most=MOST)
    )
    if args.levels:
        plan = service_bench.CapacityPlan(seconds, fixed=tuple(sorted(args.levels)))
    setups = args.setups or [parse_setup(s) for s in DEFAULT_SETUPS]
    precisions = tuple(sorted({"int8", *(s.precision for s in setups)}))
    folder = export(args.shared, args.work, args.model, precisions)
    lm = lm_bench.lm_file(args.shared, args.work, folder) if any(s.lm for s in setups) else None
    audio = service_bench.dev_audio(args.shared)
    figures = measure(folder, audio, plan, args.work, setups, lm=lm)
    figures["model"] = args.model
    print(f"\n### Through Triton on CPU vs local ({args.model})\n")
    print(markdown(figures))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "triton_bench-quick.json" if args.quick else "triton_bench.json"
    (args.out / name).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nraw figures: {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
