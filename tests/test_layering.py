"""The layering of paco_core, read from the import statements of every module (ast, no import).

Imports point down only: a module may import its own layer and the layers listed before it.
``families`` (the model-family records and registry) sits under ``models``, which asks it; it
names the code of higher layers by ``"module:attribute"`` references, imported when used.
``testing`` (the tiny model factory) may use ``models`` and is used only by ``commands``.
``run_folder`` (the torch-free run-folder package) imports only the standard library,
``paco_core.errors`` / ``paco_core.io`` and its own modules; ``jobs`` loads no heavy library
when imported.
No module of paco_core imports ComfyUI.

In ``tools/``, the workflow format library (``tools/workflows/``) imports no workflow spec and
no result card, the specs import no card, and no module imports in a circle; no file of
``tools/`` or ``bench/`` edits ``sys.path``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "paco_core"

LAYERS: list[tuple[str, set[str]]] = [
    (
        "base",
        {
            "paco_core",
            "errors",
            "io",
            "callbacks",
            "devices",
            "config",
            "prompts",
            "images",
            "run_folder",
            "settings",
            "containment",
            "run_requests",
        },
    ),
    ("families", {"families"}),
    ("models", {"models"}),
    ("testing", {"testing"}),
    ("reward", {"reward"}),
    ("generate", {"generate"}),
    ("consistency", {"consistency"}),
    ("rl", {"rl"}),
    ("jobs", {"jobs"}),
    ("commands", {"commands", "cli", "__main__"}),
]
"""Layers from the bottom up, each with the paco_core sub-modules / sub-packages it holds."""
TESTING_USERS = {"testing", "commands"}
"""The layers that may import ``testing``: production code never builds tiny models."""
RUN_FOLDER_IMPORTS = {"paco_core.errors", "paco_core.io"}
HEAVY = {"torch", "numpy", "PIL", "diffusers", "transformers", "peft", "accelerate", "safetensors", "scipy"}
COMFYUI = {
    "comfy",
    "comfy_api",
    "comfy_extras",
    "comfy_execution",
    "folder_paths",
    "nodes",
    "server",
    "execution",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. paco_core.models.judge
    path: str  # its file, relative to the repository
    line: int
    target: str  # the imported module, e.g. paco_core.reward.local
    at_module_level: bool  # runs when the module is imported (not inside a function or TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.target}"


def module_name(file: Path, root: Path) -> str:
    parts = list(file.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports(root: Path) -> list[Import]:
    """Every import statement of every module under ``root`` (a package folder)."""
    files = sorted(root.rglob("*.py"))
    known = {module_name(file, root) for file in files}
    found: list[Import] = []
    for file in files:
        name = module_name(file, root)
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        reader = _ImportReader(name, package, str(file.relative_to(root.parent)), known, found)
        reader.collect(tree.body, top=True)
    return found


@dataclass
class _ImportReader:
    module: str
    package: str
    path: str
    known: set[str]
    found: list[Import]

    def collect(self, body: list[ast.stmt], *, top: bool) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.found.append(Import(self.module, self.path, node.lineno, alias.name, top))
            elif isinstance(node, ast.ImportFrom):
                for target in self._targets(node):
                    self.found.append(Import(self.module, self.path, node.lineno, target, top))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.collect(node.body, top=False)  # runs when called, not when imported
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                self.collect(node.body, top=False)  # never runs
                self.collect(node.orelse, top=top)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                        self.collect(children, top=top)

    def _targets(self, node: ast.ImportFrom) -> list[str]:
        """The modules ``from X import a, b`` imports: X.a where that is a module, else X."""
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        targets = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in self.known]
        return targets if len(targets) == len(node.names) else [*targets, base]


def part_of(module: str) -> str:
    """The first name below paco_core: ``paco_core.models.judge`` -> ``models``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(module: str) -> int | None:
    part = part_of(module)
    return next((rank for rank, (_, parts) in enumerate(LAYERS) if part in parts), None)


def layering_problems(root: Path) -> list[str]:
    """One line per import that breaks the rules (empty when the package is layered)."""
    imports = read_imports(root)
    problems = [
        f"{file.relative_to(root.parent)} is in no layer: add {part_of(module_name(file, root))!r} to LAYERS "
        f"in {Path(__file__).name}"
        for file in sorted(root.rglob("*.py"))
        if layer_of(module_name(file, root)) is None
    ]
    for item in imports:
        top_name = item.target.split(".")[0]
        own = layer_of(item.module)
        if own is None:
            continue
        own_name = LAYERS[own][0]
        if top_name in COMFYUI:
            problems.append(f"{item}: paco_core never imports ComfyUI (only nodes/ does)")
        if part_of(item.module) == "run_folder" and not (
            top_name in sys.stdlib_module_names
            or top_name == "__future__"
            or item.target in RUN_FOLDER_IMPORTS
            or part_of(item.target) == "run_folder"
            and item.target.startswith("paco_core.")
        ):
            problems.append(
                f"{item}: run_folder imports only the standard library, paco_core.errors, paco_core.io "
                "and its own modules"
            )
        if top_name != "paco_core" or item.target == "paco_core":
            continue
        target = layer_of(item.target)
        if target is None:
            continue  # reported for the target's own file
        if target > own:
            problems.append(
                f"{item}: {own_name} may not import {LAYERS[target][0]} (a higher layer); "
                f"layers from the bottom: {' < '.join(name for name, _ in LAYERS)}"
            )
        elif (
            part_of(item.target) == "testing"
            and part_of(item.module) != "testing"
            and own_name not in TESTING_USERS
        ):
            problems.append(
                f"{item}: only {' and '.join(sorted(TESTING_USERS))} may use the tiny model factory"
            )
    problems.extend(heavy_at_import(imports, lambda module: part_of(module) in ("jobs", "run_folder")))
    return problems


def heavy_at_import(imports: list[Import], checked) -> list[str]:
    """Heavy libraries that importing a checked module loads, directly or through paco_core modules."""
    module_level: dict[str, list[Import]] = {}
    for item in imports:
        if item.at_module_level:
            module_level.setdefault(item.module, []).append(item)
    problems = []
    for module in sorted(module_level):
        if not checked(module):
            continue
        seen, stack, chain = {module}, [module], {module: []}
        while stack:
            current = stack.pop()
            for item in module_level.get(current, []):
                if item.target.split(".")[0] in HEAVY:
                    via = " -> ".join(chain[current] + [str(item)])
                    problems.append(f"importing {module} loads {item.target.split('.')[0]}: {via}")
                    continue
                for candidate in _paco_modules(item.target, module_level):
                    if candidate not in seen:
                        seen.add(candidate)
                        chain[candidate] = chain[current] + [str(item)]
                        stack.append(candidate)
    return problems


def _paco_modules(target: str, known: dict) -> list[str]:
    """The paco_core modules an import runs: the target and the packages above it."""
    if not target.startswith("paco_core"):
        return []
    parts = target.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1) if ".".join(parts[:end]) in known]


def test_paco_core_imports_point_down_only():
    problems = layering_problems(PACKAGE_ROOT)
    assert not problems, "\n".join(problems)


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fake_package(tmp_path):
    """A small package shaped like paco_core, layered correctly, including run_folder and jobs/."""
    root = tmp_path / "paco_core"
    write(root, "__init__.py", "")
    write(root, "errors.py", "")
    write(root, "io.py", "import json\n")
    write(
        root,
        "run_folder.py",
        "import json\nimport os\nfrom paco_core.errors import PaCoError\nfrom . import io\n",
    )
    write(root, "models/__init__.py", "")
    write(
        root, "models/judge.py", "from paco_core.errors import PaCoError\n\ndef load():\n    import torch\n"
    )
    write(root, "reward/__init__.py", "from paco_core.reward.local import LocalJudge\n")
    write(root, "reward/local.py", "from ..models import judge\n")
    write(root, "rl/__init__.py", "")
    write(root, "rl/config.py", "from paco_core.reward import LocalJudge\n")
    write(root, "rl/trainer.py", "import torch\n")
    write(root, "jobs/__init__.py", "")
    write(
        root,
        "jobs/store.py",
        "import sqlite3\nfrom paco_core.run_folder import read\nfrom paco_core.rl import config\n",
    )
    write(root, "testing/__init__.py", "from paco_core.models import judge\n")
    write(root, "commands/__init__.py", "")
    write(root, "commands/train.py", "from paco_core.jobs.store import x\nfrom paco_core.testing import y\n")
    return root


def test_the_checker_passes_a_layered_package(fake_package):
    assert layering_problems(fake_package) == []


@pytest.mark.parametrize(
    ("relative", "text", "message"),
    [
        (
            "models/judge.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\n\ndef load():\n"
            "    from paco_core.reward.local import LocalJudge\n",
            "paco_core/models/judge.py:6 imports paco_core.reward.local: models may not import reward",
        ),
        (
            "models/judge.py",
            "from ..rl import config\n",
            "models/judge.py:1 imports paco_core.rl.config: models may not import rl",
        ),
        (
            "reward/local.py",
            "from paco_core.testing import build\n",
            "only commands and testing may use the tiny",
        ),
        (
            "run_folder.py",
            "import json\nfrom paco_core.config import load\n",
            "run_folder imports only the standard library",
        ),
        (
            "run_folder.py",
            "def read():\n    import numpy\n",
            "run_folder.py:2 imports numpy: run_folder imports only",
        ),
        ("jobs/runner.py", "import torch\n", "importing paco_core.jobs.runner loads torch"),
        (
            "jobs/runner.py",
            "from paco_core.rl.trainer import Trainer\n",
            "importing paco_core.jobs.runner loads torch",
        ),
        ("errors.py", "import comfy.utils\n", "paco_core never imports ComfyUI"),
        ("gallery.py", "", "paco_core/gallery.py is in no layer"),
    ],
)
def test_the_checker_names_the_offending_import(fake_package, relative, text, message):
    write(fake_package, relative, text)
    problems = layering_problems(fake_package)
    assert any(message in problem for problem in problems), problems


REPO_ROOT = PACKAGE_ROOT.parent
WORKFLOW_LIBRARY = {
    f"tools.workflows.{name}" for name in ("format", "core_nodes", "node_layouts", "builder", "api_prompt")
}


def tools_import_graph() -> dict[str, set[str]]:
    """``tools`` module -> the ``tools`` modules it imports (at module level or in a function)."""
    graph: dict[str, set[str]] = {}
    for item in read_imports(REPO_ROOT / "tools"):
        graph.setdefault(item.module, set())
        if item.target.startswith("tools."):
            graph[item.module].add(item.target)
    return graph


def test_the_workflow_tools_import_one_way():
    """The workflow format library knows no workflow; the specs know no card; the cards know no
    workflow; nothing in tools/ imports in a circle."""
    graph = tools_import_graph()
    problems = []
    for module, targets in graph.items():
        allowed = (
            WORKFLOW_LIBRARY
            if module in WORKFLOW_LIBRARY
            else WORKFLOW_LIBRARY | {t for t in targets if t.startswith("tools.workflows.specs")}
            if module.startswith("tools.workflows")
            else None
        )
        if module == "tools.workflow_cards":
            allowed = set()
        if allowed is not None:
            problems += [f"{module} imports {target}" for target in sorted(targets - allowed)]

    def circle_from(start: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph.get(path[-1], ())):
            if target == start:
                return path + [target]
            if target not in path:
                found = circle_from(start, path + [target])
                if found:
                    return found
        return None

    problems += [" -> ".join(circle) for module in graph if (circle := circle_from(module, [module]))]
    assert not problems, "\n".join(problems)


def test_no_tool_or_bench_edits_sys_path():
    """tools/ and bench/ run as ``python -m tools.x`` / ``python -m bench.x`` from the repository root."""
    edits = []
    for file in sorted([*(REPO_ROOT / "tools").rglob("*.py"), *(REPO_ROOT / "bench").rglob("*.py")]):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        edits += [
            f"{file.relative_to(REPO_ROOT)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ]
    assert not edits, f"sys.path used in {edits}: import the package instead"


@pytest.fixture
def run_folder_package(fake_package):
    """The fake package with run_folder as a package of parts, like paco_core's."""
    (fake_package / "run_folder.py").unlink()
    write(fake_package, "run_folder/__init__.py", "from paco_core.run_folder.folder import RunFolder\n")
    write(fake_package, "run_folder/layout.py", "import re\n")
    write(
        fake_package,
        "run_folder/folder.py",
        "import os\nfrom paco_core.errors import PaCoError\nfrom paco_core.run_folder.layout import X\n"
        "from .lock import RunLock\n",
    )
    write(fake_package, "run_folder/lock.py", "import json\nfrom paco_core.io import write\n")
    return fake_package


def test_the_run_folder_package_may_import_its_own_modules(run_folder_package):
    assert layering_problems(run_folder_package) == []


@pytest.mark.parametrize(
    ("relative", "text", "message"),
    [
        (
            "run_folder/lock.py",
            "from paco_core.config import load\n",
            "run_folder/lock.py:1 imports paco_core.config: run_folder imports only",
        ),
        (
            "run_folder/pause.py",
            "import numpy\n",
            "run_folder/pause.py:1 imports numpy: run_folder imports only",
        ),
        (
            "run_folder/layout.py",
            "from paco_core.rl.trainer import Trainer\n",
            "importing paco_core.run_folder.layout loads torch",
        ),
    ],
)
def test_every_module_of_the_run_folder_package_is_checked(run_folder_package, relative, text, message):
    write(run_folder_package, relative, text)
    problems = layering_problems(run_folder_package)
    assert any(message in problem for problem in problems), problems


def test_paco_cores_run_folder_is_a_package_of_torch_free_parts():
    modules = {module_name(file, PACKAGE_ROOT) for file in (PACKAGE_ROOT / "run_folder").glob("*.py")}
    assert {"paco_core.run_folder", "paco_core.run_folder.folder", "paco_core.run_folder.lock"} <= modules
    checked = {item.module for item in read_imports(PACKAGE_ROOT) if part_of(item.module) == "run_folder"}
    assert checked == modules  # every part's imports are read (and so held to the rules above)
