"""The import rules of the tree, read from the code with ``ast`` (docs/architecture.md).

A wing (``server``, ``export``, ``client``, ``bench``) is a folder of modules; its imports of its
own modules are edges. Imports under ``if TYPE_CHECKING:`` are left out (they never run).
:func:`violations` reports, for a repository root:

- a cycle inside a wing (a strongly connected group of modules);
- in ``server/``, an import from a unit to a unit of the same or a higher layer (:data:`LAYERS`);
- a folder holding more than :data:`MAX_MODULES` modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

WINGS = ("server", "export", "client", "bench")
MAX_MODULES = 15

LAYERS: dict[str, int] = {
    # leaves: plain Python every layer may use
    "errors": 0,
    "constants": 0,
    "arrays": 0,
    "events": 1,
    "options": 1,
    "manifest": 2,
    # the three cores, side by side: none imports another
    "protocol": 3,
    "decoding": 3,
    "inference": 3,
    # the streaming engine drives decoding and inference
    "engine": 4,
    # I/O: the websocket service and the local Triton program
    "service": 5,
    "triton": 5,
    # processes: the CLI, one process, workers
    "app": 6,
}
"""A server unit (a top-level module or subpackage of ``server/``) may import units of a lower
layer only; inside a unit, modules import each other freely but without cycles."""

PROTOCOL_FORBIDDEN = ("numpy", "soxr", "onnxruntime", "asyncio", "websockets")
"""What importing the protocol layer must not load (tests/test_layout.py checks it in a fresh
interpreter)."""


def modules(root: Path, wing: str) -> dict[str, Path]:
    """Dotted names (``server.engine.stream``) of a wing's modules and their files."""
    base = root / wing
    found: dict[str, Path] = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([wing, *parts])] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _imported(name: str, path: Path, tree: ast.AST, wing: str) -> Iterator[str]:
    """Dotted names (as in :func:`modules`) this module imports from its own wing."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    prefix = f"streamasr.{wing}"
    skip = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == prefix or node.module.startswith(prefix + ".")):
                module = node.module.removeprefix("streamasr.")
            elif wing == "bench" and node.module and node.module.split(".")[0] == "bench":
                module = node.module
            else:
                continue
            for alias in node.names:
                yield f"{module}.{alias.name}"
                yield module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(prefix + "."):
                    yield alias.name.removeprefix("streamasr.")
                elif wing == "bench" and alias.name.split(".")[0] == "bench":
                    yield alias.name


def import_graph(root: Path, wing: str) -> dict[str, set[str]]:
    """Each module's imports of modules of its wing."""
    mods = modules(root, wing)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        targets: set[str] = set()
        for target in _imported(name, path, tree, wing):
            # ``from pkg import module`` names a module; ``from module import name`` does not
            if target in mods and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start, first in graph.items():
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(first)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def unit(module: str) -> str:
    """``server.engine.stream`` -> ``engine``; ``server.errors`` -> ``errors``."""
    return module.split(".")[1] if "." in module else ""


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Server imports that point sideways or up (see :data:`LAYERS`)."""
    found: list[str] = []
    for source, targets in sorted(graph.items()):
        here = unit(source)
        if here not in LAYERS:
            if here:
                found.append(f"{source}: unit {here!r} has no layer in LAYERS")
            continue
        for target in sorted(targets):
            there = unit(target)
            if not there or there == here:
                continue
            if there not in LAYERS or LAYERS[there] >= LAYERS[here]:
                found.append(
                    f"{source} imports {target}: layer {here} ({LAYERS[here]}) may import only "
                    f"lower layers, {there} is {LAYERS.get(there, '?')}"
                )
    return found


def crowded_folders(root: Path) -> list[str]:
    found: list[str] = []
    for wing in WINGS:
        folders = {path.parent for path in modules(root, wing).values()}
        for folder in sorted(folders):
            count = sum(1 for p in folder.glob("*.py") if p.name != "__init__.py")
            if count > MAX_MODULES:
                found.append(f"{folder.relative_to(root)}: {count} modules (at most {MAX_MODULES})")
    return found


def violations(root: Path) -> list[str]:
    """Every broken rule of the tree at ``root``; empty when it keeps them all."""
    found: list[str] = []
    for wing in WINGS:
        if not (root / wing).is_dir():
            continue
        graph = import_graph(root, wing)
        found += [f"cycle in {wing}: {' <-> '.join(group)}" for group in cycles(graph)]
        if wing == "server":
            found += layer_violations(graph)
    return found + crowded_folders(root)
