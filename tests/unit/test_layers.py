"""The folders are layers: each imports only from the layers below it, no two folders import each
other, and only the composition root (``wiring``) and what stands on it read ``settings``.

Imports are read from the source (every ``import`` and ``from ... import``, inside functions too);
an ``if __name__ == "__main__":`` block is an entry point, its own root, and is not counted."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top; a folder may import its own layer's other folders only where listed as allowed.
LAYERS: list[set[str]] = [
    {"vocabulary"},
    {"errors"},
    {"monitoring", "tracing"},
    {"resilience"},
    {"providers", "policy", "caching"},
    {"chains", "callbacks", "shared_state"},
    {"settings"},
    {"wiring"},
    {"api"},
    {"dashboard"},
]
LAYER_OF = {folder: height for height, layer in enumerate(LAYERS) for folder in layer}
READS_SETTINGS = {"settings", "wiring", "api", "dashboard"}  # the root and the HTTP edge above it


def _is_entry_point(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def _imports(tree: ast.Module) -> Iterator[str]:
    body = [node for node in tree.body if not _is_entry_point(node)]
    for node in (inner for top in body for inner in ast.walk(top)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def folder_imports() -> dict[tuple[str, str], list[str]]:
    """(importing folder, imported folder) -> the importing files."""
    edges: dict[tuple[str, str], list[str]] = {}
    for folder in LAYER_OF:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
                target = module.split(".")[0]
                if target in LAYER_OF and target != folder:
                    edges.setdefault((folder, target), []).append(str(path.relative_to(ROOT)))
    return edges


def test_every_package_folder_has_a_layer() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYER_OF)


def test_no_two_folders_import_each_other() -> None:
    edges = folder_imports()
    both_ways = sorted({tuple(sorted(pair)) for pair in edges if pair[::-1] in edges})
    assert both_ways == [], {pair: (edges[pair], edges[pair[::-1]]) for pair in both_ways}


def test_each_folder_imports_only_from_the_layers_below_it() -> None:
    upward = {pair: files for pair, files in folder_imports().items() if LAYER_OF[pair[1]] >= LAYER_OF[pair[0]]}
    assert upward == {}


def test_only_the_composition_root_and_the_http_edge_read_settings() -> None:
    readers = {folder for folder, target in folder_imports() if target == "settings"}
    assert readers <= READS_SETTINGS, readers - READS_SETTINGS
