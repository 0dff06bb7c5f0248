"""The floors of docs/architecture.md, kept honest: no module imports from a higher floor.

Every ``import`` and ``from ... import`` is read from the source (including imports inside
functions, which run as surely as top-level ones, only later), so a lazy import does not hide an
arrow that runs back up.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (module prefix, floor); the longest matching prefix wins. Mirrors docs/architecture.md.
FLOORS: tuple[tuple[str, int], ...] = (
    ("carbench.core", 0),
    ("carbench.degradations", 1),
    ("carbench.bench.metrics", 2),
    ("carbench.methods.base", 3),  # the adapter interface and weight locator
    ("carbench.methods.torch_utils", 3),
    ("carbench.methods.tiling", 3),
    ("carbench.methods.nets", 4),
    ("carbench.methods.sd", 5),
    ("carbench.methods", 6),  # the adapters and their registry
    ("carbench.bench", 7),  # the pipeline
    ("carbench.reports", 8),
    ("carbench.study", 9),
    ("carbench.api", 10),
    ("carbench.cli", 11),
    ("carbench", 12),  # the package face: the API's lazy names, python -m carbench
)
#: the checkout's folders installed under ``carbench`` (``core/`` is ``carbench.core``)
FOLDERS = ("core", "degradations", "methods", "bench", "reports", "study")
PACKAGES = (*FOLDERS, "carbench")


def floor_of(module: str) -> int:
    best = max(
        (p for p, _ in FLOORS if module == p or module.startswith(p + ".")),
        key=len,
        default=None,
    )
    if best is None:
        raise KeyError(f"{module} is on no floor: add it to FLOORS and docs/architecture.md")
    return dict(FLOORS)[best]


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts if parts[0] == "carbench" else ("carbench", *parts))


def module_path(module: str, root: Path = ROOT) -> Path:
    """Where ``carbench.x.y`` lies in the checkout (``carbench.core.x`` -> ``core/x``)."""
    parts = module.split(".")[1:]
    if parts and parts[0] in FOLDERS:
        return root.joinpath(*parts)
    return root.joinpath("carbench", *parts)


def is_module(module: str, root: Path = ROOT) -> bool:
    where = module_path(module, root)
    return where.with_suffix(".py").exists() or where.is_dir()


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a project package in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from carbench import methods`` imports the submodule carbench.methods
            subs = [
                (node.lineno, f"{node.module}.{a.name}")
                for a in node.names
                if is_module(f"{node.module}.{a.name}", root)
            ]
            if len(subs) < len(node.names):  # a name of the module itself
                out.append((node.lineno, node.module))
            out += subs
    return [(ln, m) for ln, m in out if m.split(".")[0] == "carbench"]


def project_files() -> list[Path]:
    return sorted(f for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py"))


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    bad = []
    for f in files:
        me = module_name(f, root)
        mine = floor_of(me)
        for line, target in imports_of(f, root):
            try:
                theirs = floor_of(target)
            except KeyError:
                continue
            if theirs > mine:
                where = f"{f.relative_to(root)}:{line}"
                bad.append(f"{where}: {me} (floor {mine}) imports {target} (floor {theirs})")
    return bad


def test_every_module_is_on_a_floor():
    for f in project_files():
        floor_of(module_name(f))


def test_no_import_runs_back_up():
    assert violations(project_files()) == []


def test_the_check_sees_a_wrong_import(tmp_path):
    """A foundation module that imports a method lazily is caught (the test can fail)."""
    bad = tmp_path / "core" / "_probe_bad_import.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from carbench.methods.base import Method\n    return Method\n")
    assert violations([bad], root=tmp_path) == [
        "core/_probe_bad_import.py:2: carbench.core._probe_bad_import (floor 0) imports "
        "carbench.methods.base (floor 3)"
    ]


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_cli_start_imports_nothing_heavy(argv):
    """``bench --version`` / ``--help`` load no torch, pandas, pyarrow, matplotlib, jinja2, cv2."""
    code = (
        f"import sys\nfrom carbench.cli.app import main\nmain({argv!r})\n"
        "heavy = [m for m in ('torch', 'pandas', 'pyarrow', 'matplotlib', 'jinja2', 'cv2', "
        "'numpy', 'PIL', 'yaml') if m in sys.modules]\nprint('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def defined_names(path: Path) -> set[str]:
    """Top-level names a module defines (functions, classes, assignments, its own imports)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.If, ast.Try)):  # ``if TYPE_CHECKING:`` / ``try: import``
            for inner in ast.walk(node):
                if isinstance(inner, (ast.FunctionDef, ast.ClassDef)):
                    names.add(inner.name)
                elif isinstance(inner, (ast.Import, ast.ImportFrom)):
                    names |= {(a.asname or a.name).split(".")[0] for a in inner.names}
                elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.id)
    return names


def unresolved_imports(files: list[Path], root: Path = ROOT) -> list[str]:
    """``from project.module import name`` where the module does not define ``name`` — found
    statically, so an import inside a function that tests never reach is still checked."""
    bad = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
                continue
            if node.module.split(".")[0] != "carbench":
                continue
            base = module_path(node.module, root)
            src = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
            where = f"{f.relative_to(root)}:{node.lineno}"
            if not src.exists():
                if not base.is_dir():  # a namespace package (data folders) has no __init__
                    bad.append(f"{where}: no module {node.module}")
                continue
            have = defined_names(src)
            for a in node.names:
                is_sub = is_module(f"{node.module}.{a.name}", root)
                if a.name != "*" and a.name not in have and not is_sub:
                    bad.append(f"{where}: {node.module} has no {a.name}")
    return bad


def test_every_project_import_resolves():
    assert unresolved_imports(project_files() + sorted((ROOT / "tests").rglob("*.py"))) == []


def test_the_import_check_sees_a_missing_name(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "run.py").write_text("def decoded_input():\n    pass\n")
    probe = tmp_path / "bench" / "probe.py"
    probe.write_text("def f():\n    from carbench.bench.run import _decoded\n")
    assert unresolved_imports([probe], root=tmp_path) == [
        "bench/probe.py:2: carbench.bench.run has no _decoded"
    ]
