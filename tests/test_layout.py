"""The tree keeps its architecture: layers, no cycles, a pure protocol layer, a true map."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.layout_rules import LAYERS, PROTOCOL_FORBIDDEN, modules, violations

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_keeps_the_import_rules() -> None:
    assert violations(ROOT) == []


def test_every_server_unit_has_a_layer() -> None:
    units = {name.split(".")[1] for name in modules(ROOT, "server") if "." in name}
    assert units == set(LAYERS)


def _copy_server(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "server", tmp_path / "server")
    return tmp_path


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    root = _copy_server(tmp_path)
    v1 = root / "server" / "protocol" / "v1.py"
    v1.write_text(v1.read_text() + "\nfrom streamasr.server.engine.stream import Stream\n")
    found = violations(root)
    assert any("server.protocol.v1 imports server.engine.stream" in line for line in found), found


def test_a_sideways_import_between_cores_is_reported(tmp_path: Path) -> None:
    root = _copy_server(tmp_path)
    ctc = root / "server" / "decoding" / "ctc.py"
    ctc.write_text(ctc.read_text() + "\nfrom streamasr.server.inference import scheduler\n")
    found = violations(root)
    assert any("server.decoding.ctc imports server.inference.scheduler" in f for f in found)


def test_a_cycle_is_reported_and_type_checking_imports_are_not(tmp_path: Path) -> None:
    root = _copy_server(tmp_path)
    greedy = root / "server" / "decoding" / "greedy.py"
    ctc = root / "server" / "decoding" / "ctc.py"
    ctc.write_text(
        ctc.read_text()
        + "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
        + "    from streamasr.server.decoding.greedy import GreedyCtcDecoder\n"
    )
    assert violations(root) == []
    ctc.write_text(ctc.read_text() + "\nfrom streamasr.server.decoding import greedy\n")
    assert greedy.exists()
    found = violations(root)
    assert any(line.startswith("cycle in server:") and "greedy" in line for line in found)


def test_a_crowded_folder_is_reported(tmp_path: Path) -> None:
    root = _copy_server(tmp_path)
    for k in range(16):
        (root / "server" / "options" / f"extra{k}.py").write_text("X = 1\n")
    assert any("server/options: " in line for line in violations(root))


def test_the_protocol_layer_imports_nothing_heavy() -> None:
    names = sorted(
        "streamasr." + name
        for name in modules(ROOT, "server")
        if name.startswith("server.protocol")
    )
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in names)
        + f"print(' '.join(m for m in {PROTOCOL_FORBIDDEN!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert len(names) >= 5
    assert out.stdout.strip() == ""


MODULE_PATH = re.compile(r"`((?:server|export|client|bench)/[\w/]+\.py)`")
DOTTED = re.compile(r"`(streamasr\.(?:server|export|client)(?:\.\w+)+)`")


def test_the_map_names_only_modules_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths = MODULE_PATH.findall(text)
    dotted = DOTTED.findall(text)
    assert len(paths) >= 30
    missing = [p for p in paths if not (ROOT / p).is_file()]
    for name in dotted:
        parts = name.split(".")[1:]
        base = ROOT.joinpath(*parts)
        if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
            missing.append(name)
    assert missing == []


def test_readme_links_the_map() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()


def test_clients_and_benchmarks_build_v1_messages_through_the_schema() -> None:
    """No hand-built v1 ``start``/``stop`` in client/ or bench/: they go through
    streamasr.server.protocol.messages (the browser page, in JavaScript, aside)."""
    hand_built = re.compile(r"""["']type["']\s*:\s*["'](start|stop)["']""")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for wing in ("client", "bench")
        for path in sorted((ROOT / wing).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if hand_built.search(line)
    ]
    assert found == []


def test_the_docs_name_modules_and_bench_commands_that_exist() -> None:
    from bench.__main__ import COMMANDS

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing: list[str] = []
    for page in pages:
        text = page.read_text()
        name = page.relative_to(ROOT)
        missing += [f"{name}: {p}" for p in MODULE_PATH.findall(text) if not (ROOT / p).is_file()]
        commands = re.findall(r"python -m bench ([a-z_]+)", text)
        missing += [f"{name}: python -m bench {c}" for c in commands if c not in COMMANDS]
    assert missing == []
