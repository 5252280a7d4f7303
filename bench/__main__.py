"""``python -m bench report ...``: the whole benchmark report (see ``bench.report``);
``python -m bench tune ...``: a model's streaming defaults and presets (see ``bench.tune``).

The single benchmarks keep their own entry points: ``python -m bench.export_fixture``,
``python -m bench.export_bench``, ``python -m bench.stream_bench``,
``python -m bench.service_bench`` and ``python -m bench.frontend_bench``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = ("report", "tune")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m bench {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        print(__doc__, file=sys.stderr)
        return 2
    if args[0] == "tune":
        from . import tune

        return tune.main(args[1:])
    from . import report

    return report.main(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
