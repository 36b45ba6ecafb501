"""No import cycle anywhere in gateway/: arrows point down only (STYLE, "The shape of the house").

The graph is read from the source with `ast`, so every import counts: top-level ones, those
under `if TYPE_CHECKING:` and those inside functions, absolute (`import gateway.x`,
`from gateway.x import y`, `from gateway import x`) and relative (`from . import x`,
`from .x import y`). An edge goes to the module an import names (a package's `__init__` when
it names the package); importing a submodule is not counted as importing its parent package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import gateway

PACKAGE_DIR = Path(gateway.__file__).parent

Graph = dict[str, set[str]]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under root, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _is_package(modules: dict[str, Path], name: str) -> bool:
    return modules[name].name == "__init__.py"


def _imported(node: ast.AST, current: str, modules: dict[str, Path]) -> Iterator[str]:
    """The dotted names an import node may import: a module, or a module's attribute."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: against the importing module's package
            package = current if _is_package(modules, current) else current.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        yield base
        yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path, package: str) -> Graph:
    """module -> the package's modules it imports, from every import statement in its source."""
    modules = module_names(root, package)
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported(node, name, modules):
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_gateway_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE_DIR, "gateway")
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def reachable(graph: Graph, start: str) -> set[str]:
    """Every module start imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_services_and_all_it_builds_import_neither_app_nor_api() -> None:
    below = reachable(import_graph(PACKAGE_DIR, "gateway"), "gateway.services")
    assert not {m for m in below if m == "gateway.app" or m.startswith("gateway.api")}
    assert {"gateway.pipeline", "gateway.cluster", "gateway.detection.wiring"} <= below


def test_the_graph_is_real() -> None:
    graph = import_graph(PACKAGE_DIR, "gateway")
    assert "gateway.services" in graph["gateway.app"]
    assert "gateway.audit.chain" in graph["gateway.audit.store"]
    assert "gateway.grants" in graph["gateway.authz"]  # only under TYPE_CHECKING: still counted


# Each form of import, closing a cycle in a package of its own: the check must see every one.
CYCLE_FORMS = {
    "type_checking": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
    ),
    "in_function": "def f():\n    from pkg.b import B\n",
    "relative_module": "from .b import B\n",
    "relative_package": "from . import b\n",
    "from_package": "from pkg import b\n",
    "plain_import": "import pkg.b\n",
}


def _write_package(root: Path, a_source: str, b_source: str) -> Path:
    pkg = root / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(a_source)
    (pkg / "b.py").write_text(b_source)
    return pkg


def test_every_form_of_import_closes_a_cycle(tmp_path: Path) -> None:
    for form, a_source in CYCLE_FORMS.items():
        pkg = _write_package(tmp_path / form, a_source, "from pkg.a import A\n")
        assert find_cycle(import_graph(pkg, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"], form


def test_a_one_way_package_has_no_cycle(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, "from pkg.b import B\nfrom . import b\n", "import os\n")
    sub = pkg / "sub"
    sub.mkdir()
    (sub / "__init__.py").write_text("from .leaf import x\n")
    (sub / "leaf.py").write_text("from .. import b\nfrom ..b import B\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.sub.leaf"] == {"pkg", "pkg.b"}
    assert graph["pkg.sub"] == {"pkg.sub.leaf"}
    assert find_cycle(graph) is None
