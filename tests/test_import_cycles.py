"""No import cycles inside the project's packages, and the layer rule: producers -> worker ->
storage, never back up.

Every module of the three packages is parsed (never imported): each `import` and `from ... import`,
at module level or inside a function, relative or absolute, is an edge to the project module it
names (`from worker import delivery` names ``worker.delivery``; `from worker.outbox import
queue_message` names ``worker.outbox``). An import hidden in a function to dodge a cycle at load
time still ties the two modules together, so it counts. A package's ``__init__`` is a module of its
own, and importing a submodule imports its packages too (Python runs their ``__init__`` first),
except the importer's own packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest layer first: a package may import only those before it (and itself).
LAYERS = ("storage", "worker", "producers")

# Cycles allowed for now, each as the set of its modules, with the reason: none.
KNOWN_CYCLES: list[frozenset[str]] = []

Graph = dict[str, set[str]]


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(module: str, path: Path, tree: ast.AST) -> Iterator[str]:
    """The dotted name each import of the module names (`from pkg import name` as pkg.name,
    which is pkg's submodule if there is one, else a name in pkg)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                source = f"{base}.{source}" if source else base
            for alias in node.names:
                yield source if alias.name == "*" else f"{source}.{alias.name}"


def import_graph(root: Path, packages: Iterable[str] = LAYERS) -> Graph:
    """Each project module and the project modules it imports."""
    modules = module_files(root, packages)
    graph: Graph = {name: set() for name in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _imported_names(module, path, tree):
            target = _project_module(name, modules)
            if target is not None:
                graph[module].add(target)
                graph[module].update(_parents_run_first(module, target, modules))
    return graph


def _parents_run_first(module: str, target: str, modules: dict[str, Path]) -> Iterator[str]:
    """The packages an import of `target` runs first (``worker.actors`` for
    ``worker.actors.delivery``: its ``__init__`` loads every actor), but not the importer's own,
    which are loaded already."""
    parts = target.split(".")[:-1]
    while parts:
        package = ".".join(parts)
        if package in modules and not (module + ".").startswith(package + "."):
            yield package
        parts.pop()


def _project_module(name: str, modules: dict[str, Path]) -> str | None:
    """The project module a dotted name is, or is a name in: its longest prefix that is a
    module (None for the standard library and third parties)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def tangles(graph: Graph) -> list[tuple[list[str], list[str]]]:
    """Each group of modules that import each other (a self-import too): one cycle through
    them, as a path that ends where it starts, and all of the group's modules."""
    found = []
    for component in strongly_connected(graph):
        first = component[0]
        if len(component) > 1 or first in graph[first]:
            found.append((_cycle_through(first, set(component), graph), component))
    return found


def cycles(graph: Graph) -> list[list[str]]:
    return [cycle for cycle, _ in tangles(graph)]


def _cycle_through(start: str, members: set[str], graph: Graph) -> list[str]:
    """The shortest path from `start` back to itself inside its component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & members):
                if successor == start:
                    return [*paths[node], start]
                if successor not in paths:
                    paths[successor] = [*paths[node], successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")


def _layer(module: str) -> int:
    return LAYERS.index(module.partition(".")[0])


def layer_breaches(graph: Graph) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]


def test_no_import_cycle_inside_the_packages() -> None:
    # Given every module of storage, worker and producers, parsed
    graph = import_graph(ROOT)
    # When the imports between them are followed
    found = [
        f"{' -> '.join(cycle)}  (modules in the loop: {', '.join(component)})"
        for cycle, component in tangles(graph)
        if frozenset(component) not in KNOWN_CYCLES
    ]
    # Then none comes back to where it started
    assert not found, "import cycles:\n" + "\n".join(found)


def test_layers_point_one_way() -> None:
    # Given the same imports; when each is compared with the layers; then none points back up
    breaches = layer_breaches(import_graph(ROOT))
    assert not breaches, "layer rule producers -> worker -> storage broken:\n" + "\n".join(breaches)


def test_the_graph_is_of_the_whole_project() -> None:
    # Given the project; when its graph is built; then the delivery's three modules are in it,
    # with the edges they have, so a parse that found nothing would not pass silently
    graph = import_graph(ROOT)
    assert {"worker.outbox", "worker.delivery", "worker.actors.delivery"} <= set(graph)
    assert "worker.delivery" in graph["worker.actors.delivery"]  # `from worker import delivery`
    assert "storage.models.outbox" in graph["worker.outbox"]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "storage/__init__.py": "",
                "worker/__init__.py": "",
                "worker/a.py": "def f():\n    from worker.b import g\n",
                "worker/b.py": "from worker import c\n",
                "worker/c.py": "from . import a\n",
            },
            ["worker.a", "worker.b", "worker.c", "worker.a"],
            id="through a function, a package and a relative import",
        ),
        pytest.param(
            {"storage/__init__.py": "", "storage/x.py": "import storage.x\n"},
            ["storage.x", "storage.x"],
            id="a self-import",
        ),
        pytest.param(
            {
                "storage/__init__.py": "",
                "storage/p/__init__.py": "from .q import Q\n",
                "storage/p/q.py": "from ..p import helper\nQ = 1\n",
            },
            ["storage.p", "storage.p.q", "storage.p"],
            id="a package and its submodule",
        ),
        pytest.param(
            {
                "storage/__init__.py": "",
                "worker/__init__.py": "",
                "worker/actors/__init__.py": "from worker.actors import a\n",
                "worker/actors/a.py": "from worker import job\n",
                "worker/job.py": "def f():\n    from worker.actors.a import x\n",
            },
            ["worker.actors", "worker.actors.a", "worker.job", "worker.actors"],
            id="through the package an import runs first",
        ),
    ],
)
def test_the_checker_names_a_cycle(tmp_path: Path, files: dict[str, str], expected: list[str]):
    # Given modules that import each other in a loop
    _write(tmp_path, files)
    # When the checker follows their imports; then it names the loop
    assert cycles(import_graph(tmp_path, ("storage", "worker"))) == [expected]


def test_the_checker_passes_one_way_imports_and_names_a_breach(tmp_path: Path) -> None:
    # Given worker importing storage, and storage importing worker inside a function
    _write(
        tmp_path,
        {
            "storage/__init__.py": "",
            "storage/s.py": "def f():\n    from worker import w\n",
            "worker/__init__.py": "",
            "worker/w.py": "from storage.s import f\nimport json\n",
            "worker/v.py": "from storage import s\n",
        },
    )
    graph = import_graph(tmp_path, ("storage", "worker"))
    # Then the loop is named, and so is the import that points up
    assert cycles(graph) == [["storage.s", "worker.w", "storage.s"]]
    assert layer_breaches(graph) == ["storage.s imports worker", "storage.s imports worker.w"]
    assert graph["worker.v"] == {"storage", "storage.s"}
