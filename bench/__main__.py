"""``python -m bench COMMAND [options]``: every benchmark's command line.

``report`` (the whole benchmark report, ``bench.report.run``), ``tune`` (a model's streaming
defaults and presets, ``bench.stream.tune``), and the single benchmarks under the names they
have always had: ``export_fixture``, ``export_bench``, ``stream_bench``, ``lm_bench``,
``noise``, ``service_bench``, ``frontend_bench``, ``memory_bench``, ``soak_bench``,
``openai_memory``, ``triton_bench`` and ``gpu_capacity``. Each takes the options of its own
module's ``main``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "report": "bench.report.run",
    "tune": "bench.stream.tune",
    "export_fixture": "bench.export.fixture",
    "export_bench": "bench.export.bench",
    "stream_bench": "bench.stream.bench",
    "lm_bench": "bench.stream.lm",
    "noise": "bench.stream.noise",
    "service_bench": "bench.service.capacity",
    "frontend_bench": "bench.service.frontend",
    "memory_bench": "bench.service.memory",
    "soak_bench": "bench.service.soak",
    "openai_memory": "bench.service.openai_memory",
    "punctuation": "bench.punctuation.bench",
    "punctuation_train": "bench.punctuation.train",
    "triton_bench": "bench.triton.bench",
    "triton_hop": "bench.triton.hop",
    "triton_hop_micro": "bench.triton.hop_micro",
    "gpu_capacity": "bench.gpu.capacity",
}
"""Command name -> the module whose ``main()`` runs it (imported only when it runs)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m bench {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        print(__doc__, file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]])
    # Every main reads its options from sys.argv (some take no argv parameter).
    sys.argv = [f"python -m bench {args[0]}", *args[1:]]
    result = module.main()
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
