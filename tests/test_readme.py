"""README's commands are the ones CI runs: a fresh clone that follows README passes the tests."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALL = re.compile(r"^pip install torch==\S+ && pip install .*$", re.MULTILINE)


def test_ci_installs_with_the_readme_line() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    lines = {m.group(0).split("  #")[0].rstrip() for m in INSTALL.finditer(readme)}
    assert len(lines) == 1, f"Quick start and Install differ: {lines}"
    (line,) = lines
    assert "bench" in line and "dev" in line, "the tests need the bench and dev extras"
    assert line in ci.splitlines(), f"{line!r} is not in .ci/run"
    assert "\npython -m pytest\n" in ci and "python -m pytest" in readme
