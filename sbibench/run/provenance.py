"""What fixes a job's results besides its configuration: the code that computes them and the
task's files; a record is reused on resume only where these are the same as today's.

``code_digest`` hashes the source of every sbibench module that the job's computation can run:
the method's module, the task's model family and `sbibench.run.worker` (fitting, sampling,
scoring, calibration), with every sbibench module they import, transitively, read statically
from their import statements (lazy imports inside functions count). Editing the report, the
CLI or another method leaves a record's digest unchanged; editing anything its numbers went
through changes it. Code outside sbibench (a user's ``external`` function, torch) is not
hashed: its version is the user's to record.

``task_digest`` hashes the task card and the reference folder's ``MANIFEST.json`` (which holds
the sha256 of the observations, reference samples and noise floors).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from sbibench import __version__
from sbibench.methods import method_paths
from sbibench.models import FAMILIES
from sbibench.reference.store import reference_dir
from sbibench.registry import module_of
from sbibench.task import get_task

__all__ = ["code_digest", "job_provenance", "module_closure", "task_digest"]

_PACKAGE = Path(__file__).resolve().parent.parent


def _source(module: str) -> Path | None:
    """The file of an sbibench module (or package), None for anything else."""
    parts = module.split(".")
    if parts[0] != "sbibench":
        return None
    base = _PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(module: str, path: Path) -> set[str]:
    """The sbibench modules ``module`` names in any import statement."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .base import x, from . import y
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # maybe submodules
    return {name for name in found if _source(name) is not None}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks (imports for annotations
    only, which never run)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        nodes.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return nodes


@functools.cache
def module_closure(*roots: str) -> tuple[str, ...]:
    """The sbibench modules reachable from ``roots`` by import statements, with every parent
    package (importing a.b.c runs a/__init__ and a/b/__init__), sorted."""
    seen: set[str] = set()
    todo = [root for root in roots if _source(root) is not None]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)]
        todo.extend(parent for parent in parents if _source(parent) is not None)
        todo.extend(_imports(module, _source(module)))
    return tuple(sorted(seen))


@functools.cache
def code_digest(method_module: str, family_module: str) -> str:
    """sha256 (16 hex digits) of the sources a job of this method on this family runs."""
    digest = hashlib.sha256()
    for module in module_closure(method_module, family_module, "sbibench.run.worker"):
        digest.update(module.encode() + b"\0" + _source(module).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def task_digest(task_name: str) -> str:
    """sha256 (16 hex digits) of the task card and its reference folder's MANIFEST.json."""
    task = get_task(task_name)
    manifest = reference_dir(task) / "MANIFEST.json"
    digest = hashlib.sha256(Path(task.card_path).read_bytes() + b"\0")
    digest.update(manifest.read_bytes() if manifest.is_file() else b"no manifest")
    return digest.hexdigest()[:16]


def job_provenance(task_name: str, method_name: str) -> dict[str, str]:
    """The fields a record must share with today's code to be reused: sbibench's version, the
    code digest and the task digest."""
    method_module = module_of(method_paths()[method_name])
    family_module = FAMILIES[get_task(task_name).family].split(":")[0]
    return {
        "sbibench_version": __version__,
        "code_digest": code_digest(method_module, family_module),
        "task_digest": task_digest(task_name),
    }
