"""CPU per window of the Triton backend alone (no websocket server), by code tree.

    python -m bench triton_hop_micro --url triton://127.0.0.1:PORT --model-dir EXPORT
                                     [--tree LINK_TREE ...] [--precision int8] [--windows 600]
                                     [--rate 100] [--samples 40000] [--repeats 3]

Each tree runs in a child process of its own (its ``streamasr`` first on ``sys.path``): a
:class:`TritonBackend` submits ``--windows`` windows of ``--samples`` samples, ``--rate`` per
second from a plain thread (as the engine's streams do), and waits for all; the figure is the
child's CPU (all threads, ``time.process_time``) per window, after a warm-up. Trees and repeats
are interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy as np
from streamasr.server.inference.config import InferenceConfig
from streamasr.server.manifest import read_manifest
from streamasr.server.inference.triton import open_triton
url, folder, precision = sys.argv[2], sys.argv[3], sys.argv[4]
windows, rate, samples = int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
backend = open_triton(read_manifest(Path(folder)), InferenceConfig(url), precision, 4096)
backend.start()
rng = np.random.default_rng(0)
data = [rng.standard_normal(samples).astype(np.float32) * 0.1 for _ in range(8)]
for i in range(20):
    backend.submit(data[i % 8]).result()
cpu, wall = time.process_time(), time.perf_counter()
futures = []
for i in range(windows):
    due = wall + i / rate
    while (left := due - time.perf_counter()) > 0:
        time.sleep(left)
    futures.append(backend.submit(data[i % 8]))
for f in futures:
    f.result()
cpu = time.process_time() - cpu
backend.stop()
print(json.dumps({"cpu_ms_per_window": cpu / windows * 1000,
                  "batch_sizes": dict(backend.stats.batch_sizes)}))
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--tree", type=Path, nargs="+", required=True)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--windows", type=int, default=600)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--samples", type=int, default=40000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    costs: dict[str, list[float]] = {str(t): [] for t in args.tree}
    for _ in range(args.repeats):
        for tree in args.tree:
            command = [sys.executable, "-c", CHILD, str(tree), args.url, str(args.model_dir)]
            command += [args.precision, str(args.windows), str(args.rate), str(args.samples)]
            started = time.perf_counter()
            out = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
            costs[str(tree)].append(out["cpu_ms_per_window"])
            print(f"{tree} {args.precision}: {out} ({time.perf_counter() - started:.1f} s)")
    print(f"\n| tree | {args.precision} ms CPU per window (median; all) |\n|---|---|")
    for tree, values in costs.items():
        every = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {tree} | **{statistics.median(values):.2f}**; {every} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
