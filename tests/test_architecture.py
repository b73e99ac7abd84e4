"""The structure ARCHITECTURE.md describes, checked against the code's own imports.

The import graph is read with `ast` from every source file of the project (the packages, `train_hf.py`, `scripts/`,
the Space's `app.py`), function-level imports included: imports that only a type checker sees (`if TYPE_CHECKING:`)
are left out, as they never run. Nothing here imports torch except the test of the old module paths.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling_avcpnet", "datasets_emotions", "hub_cards")
TOP = REPO / "modeling_avcpnet"

# The rows of ARCHITECTURE.md, lowest first: a file may import files of its own row and of the rows below it.
LAYERS = [
    ("leaves", ["modeling_avcpnet/labels.py", "modeling_avcpnet/media_avcpnet.py", "hub_cards/"]),
    ("hub set", ["modeling_avcpnet/*.py"]),  # the files at the top of the package, with __init__ and registration
    ("data", ["datasets_emotions/"]),
    ("library", ["modeling_avcpnet/training/", "modeling_avcpnet/inference/", "modeling_avcpnet/convert/",
                 "modeling_avcpnet/mer2023/"]),
    ("apps", ["modeling_avcpnet/apps/"]),
    ("recipes", ["train_hf.py", "scripts/"]),
]


def source_files() -> list[Path]:
    files = [REPO / "train_hf.py", *sorted((REPO / "scripts").glob("*.py"))]
    for package in PACKAGES:
        files += sorted(path for path in (REPO / package).rglob("*.py") if "__pycache__" not in path.parts)
    return files


def module_name(path: Path) -> str:
    """Dotted name of a file importable from the repository root; the relative path for the others (a script)."""
    relative = path.relative_to(REPO)
    parts = list(relative.with_suffix("").parts)
    if not (path.parent / "__init__.py").exists() and path.parent != REPO:
        return str(relative)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def runtime_imports(tree: ast.AST):
    """Every Import/ImportFrom node of a module, anywhere but under `if TYPE_CHECKING:`."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped]


def import_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports}, keyed by `module_name`."""
    paths = {module_name(path): path for path in source_files()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if is_package(path) else name.rpartition(".")[0]
        targets = set()
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    found = [".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in paths]
                    targets.update(found[:1])
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in paths:
                    targets.add(f"{base}.{alias.name}")
                elif base in paths:
                    targets.add(base)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    path = module if module.endswith(".py") else None
    if path is None:
        file = REPO / Path(*module.split("."))
        path = str((file / "__init__.py" if file.is_dir() else file.with_suffix(".py")).relative_to(REPO))
    for number, (_, patterns) in enumerate(LAYERS):  # the first row that names the file
        for pattern in patterns:
            if pattern.endswith("/") and path.startswith(pattern):
                return number
            if pattern.endswith("*.py") and os.path.dirname(path) == pattern[:-5] or path == pattern:
                return number
    raise AssertionError(f"{path} is in no row of LAYERS (add it to ARCHITECTURE.md and here)")


def test_no_import_cycle():
    graph = import_graph()
    assert "modeling_avcpnet.apps.cli" in graph and graph["modeling_avcpnet.apps.cli"]  # the walk sees the CLI
    assert cycles(graph) == []


def test_cycle_finder_sees_function_level_imports():
    code = "def f():\n    from .b import g\n"
    imports = runtime_imports(ast.parse(code))
    assert len(imports) == 1 and imports[0].level == 1
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_row_imports_only_its_own_and_the_rows_below():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert upward == []


def test_the_top_of_modeling_avcpnet_is_the_hub_set():
    """What transformers copies into a saved repo (the relative imports, followed from every class that
    registration.py registers and from the pipelines) is exactly the top level of the package, less `__init__.py`
    and `registration.py`; those files import each other with single-dot relative imports only."""
    from transformers.dynamic_module_utils import get_relative_import_files

    copied = {Path(path).name for path in get_relative_import_files(str(TOP / "registration.py"))}
    top = {path.name for path in TOP.glob("*.py")} - {"__init__.py", "registration.py"}
    assert copied == top
    for name in top:
        text = (TOP / name).read_text(encoding="utf-8")
        assert not re.search(r"^\s*from \.\.", text, re.M), f"{name}: a Hub file imports from outside its folder"
        assert not re.search(r"^\s*(from|import) (modeling_avcpnet|datasets_emotions|hub_cards)\b", text, re.M), name


def test_old_module_paths_are_the_moved_modules():
    import modeling_avcpnet

    for old, new in modeling_avcpnet.MOVED_MODULES.items():
        assert not (TOP / f"{old}.py").exists()
        assert importlib.import_module(f"modeling_avcpnet.{old}") is importlib.import_module(f"modeling_avcpnet.{new}")
    from modeling_avcpnet.face_crop_mer2023 import FaceCropper  # README, before the move
    from modeling_avcpnet.mer2023.face_crop import FaceCropper as moved

    assert FaceCropper is moved


@pytest.mark.parametrize("module", ["modeling_avcpnet.cli", "modeling_avcpnet.apps.cli"])
def test_the_command_line_runs_from_its_old_and_new_path(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert done.returncode == 0 and "{predict,timeline,demo,sample-clips}" in done.stdout, done.stderr[-2000:]


def test_packaging_lists_every_package_and_the_console_script():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    found = {module_name(path) for path in source_files() if is_package(path)}
    assert set(project["tool"]["setuptools"]["packages"]) == found
    module, _, function = project["project"]["scripts"]["avcpnet"].partition(":")
    assert (REPO / Path(*module.split("."))).with_suffix(".py").is_file() and function == "main"


def test_hub_cards_holds_card_templates_only():
    entries = {path.name for path in (REPO / "hub_cards").iterdir() if path.name != "__pycache__"}
    assert entries == {"__init__.py"} | {name for name in entries if name.endswith(".md")}


def test_the_paths_architecture_md_names_exist():
    """Every file or folder ARCHITECTURE.md names in backquotes exists: from the repository root, or as the end of
    a path (`inference/predict.py`, `labels.py`)."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = {name.rstrip("/") for name in re.findall(r"`([\w./-]+(?:/|\.py|\.md|\.yaml))`", text)}
    assert len(named) > 20, "ARCHITECTURE.md names (almost) no path"
    tree = {str(path.relative_to(REPO)) for path in REPO.rglob("*") if ".git" not in path.parts}
    missing = [name for name in sorted(named)
               if name not in tree and not any(path.endswith("/" + name) for path in tree)]
    assert missing == []
