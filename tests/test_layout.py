"""The package's layout: no import cycles among sbibench's modules, and a command line that
parses its arguments without the heavy libraries."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sbibench

PACKAGE = Path(sbibench.__file__).resolve().parent


def _modules():
    """Module name -> source file, for every module and package of sbibench."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("sbibench", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_type_checking(test):
    return "TYPE_CHECKING" in ast.unparse(test)


def _imported(node, module, is_package):
    """The names an import statement imports: each module and each ``module.name``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if is_package else module.rpartition(".")[0]
    if node.level:  # relative: from . import x, from ..run import suite
        package = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _imports(module, path, modules):
    """The sbibench modules that ``module`` imports anywhere (inside functions too), but not
    under ``if TYPE_CHECKING:``, which never runs."""
    found, todo = set(), [ast.parse(path.read_text(), filename=str(path))]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            is_package = path.name == "__init__.py"
            found.update(n for n in _imported(node, module, is_package) if n in modules)
        todo.extend(ast.iter_child_nodes(node))
    return found - {module}


def _cycles(graph):
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _path(graph, component):
    """One cycle through a component, for the message: a -> b -> ... -> a."""
    start, inside = component[0], set(component)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for other in sorted(graph[path[-1]] & inside):
            if other == start:
                return " -> ".join([*path, start])
            if other not in seen:
                seen.add(other)
                paths.append([*path, other])
    return ", ".join(component)


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_is_read_from_every_module():
    graph = _graph()
    assert {"sbibench.cli", "sbibench.run.runner", "sbibench.report.check"} <= set(graph)
    # a lazy import inside a function counts; an import for annotations only does not
    assert "sbibench.run.runner" in graph["sbibench.cli"]
    assert "sbibench.registry" in graph["sbibench"]
    assert "sbibench.run.cpus" in graph["sbibench.run.executors"]


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _path(graph, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_no_import_cycles():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_path(graph, c) for c in cycles)


# The rooms of docs/architecture.md, in order: a module imports only modules of its own room
# or of a room above it (earlier in this list), never one below. (Within a room, the test
# above keeps the imports free of circles.)
ROOMS = [
    ("sbibench.registry", "sbibench.checks", "sbibench.paths"),
    (
        "sbibench.models",
        "sbibench.metrics",
        "sbibench.nn",
        "sbibench.autodiff",
        "sbibench.mcmc",
        "sbibench.importance",
    ),
    ("sbibench.failures", "sbibench.reference.store", "sbibench.reference"),
    ("sbibench.task",),
    ("sbibench.scoring",),
    ("sbibench.reference.build", "sbibench.methods"),
    ("sbibench.records",),
    ("sbibench.run",),
    ("sbibench.report",),
    ("sbibench.cli", "sbibench.pytest_plugin", "sbibench.__main__"),
]


def _room(module):
    """The index of the room holding ``module``: that of its longest name in ROOMS."""
    homes = [
        (len(name), index)
        for index, room in enumerate(ROOMS)
        for name in room
        if module == name or module.startswith(name + ".")
    ]
    if homes:
        return max(homes)[1]
    raise AssertionError(f"{module} belongs to no room of ROOMS: place it there")


def test_imports_point_up_the_rooms_never_down():
    # the longest name decides: reference/build sits below the task it builds from
    assert _room("sbibench.reference.build") > _room("sbibench.task") > _room("sbibench.reference")
    graph = _graph()
    del graph["sbibench"]  # the package's lazy public names reach everything, by design
    graph = {module: imported - {"sbibench"} for module, imported in graph.items()}
    downward = []
    for module, imported in sorted(graph.items()):
        here = _room(module)
        downward += [f"{module} -> {other}" for other in sorted(imported) if _room(other) > here]
    assert not downward, "imports pointing down the rooms:\n" + "\n".join(downward)


@pytest.mark.parametrize(
    ("code", "heavy"),
    [
        # the command line's parser, as its --help and argument errors use it
        ("import sbibench.cli\nsbibench.cli._parser()", ("torch", "pandas", "ot")),
        # `sbibench --help` and `import sbibench`
        (
            "import sbibench, sbibench.cli\n"
            "try:\n    sbibench.cli.main(['--help'])\nexcept SystemExit:\n    pass",
            ("pandas", "ot", "seaborn", "matplotlib"),
        ),
    ],
)
def test_the_command_line_stays_light(code, heavy):
    """Run in a fresh process: none of the heavy libraries is imported."""
    code += f"\nimport sys\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]"), result.stdout + result.stderr
