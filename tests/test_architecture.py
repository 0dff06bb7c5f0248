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
    ("bench.core", 0),
    ("bench", 0),  # the package face: __version__ only
    ("degradations", 1),
    ("bench.metrics", 2),
    ("methods.base", 3),  # the adapter interface and weight locator
    ("methods.torch_utils", 3),
    ("methods.tiling", 3),
    ("methods.nets", 4),
    ("methods.sd", 5),
    ("methods", 6),  # the adapters and their registry
    ("bench.datasets", 7),
    ("bench.protocols", 7),
    ("bench.suites", 7),
    ("bench.generate", 7),
    ("bench.run", 7),
    ("bench.store", 7),
    ("bench.check", 7),
    ("reports", 8),
    ("bench.study", 9),
    ("bench.cli", 10),
)
PACKAGES = ("bench", "degradations", "methods", "reports")


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
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a project package in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # ``from bench import core`` imports the submodule bench.core
            base = ROOT.joinpath(*node.module.split("."))
            out += [
                (node.lineno, f"{node.module}.{a.name}")
                for a in node.names
                if (base / f"{a.name}.py").exists() or (base / a.name).is_dir()
            ]
    return [(ln, m) for ln, m in out if m.split(".")[0] in PACKAGES]


def project_files() -> list[Path]:
    return sorted(f for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py"))


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    bad = []
    for f in files:
        me = module_name(f, root)
        mine = floor_of(me)
        for line, target in imports_of(f):
            try:
                theirs = floor_of(target)
            except KeyError:
                continue  # ``from bench import __version__`` style names that are no module
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
    bad = tmp_path / "bench" / "core" / "_probe_bad_import.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from methods.base import Method\n    return Method\n")
    assert violations([bad], root=tmp_path) == [
        "bench/core/_probe_bad_import.py:2: bench.core._probe_bad_import (floor 0) imports "
        "methods.base (floor 3)"
    ]


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_cli_start_imports_nothing_heavy(argv):
    """``bench --version`` / ``--help`` load no torch, pandas, pyarrow, matplotlib, jinja2, cv2."""
    code = (
        f"import sys\nfrom bench.cli.app import main\nmain({argv!r})\n"
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
            if node.module.split(".")[0] not in PACKAGES:
                continue
            base = root.joinpath(*node.module.split("."))
            src = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
            where = f"{f.relative_to(root)}:{node.lineno}"
            if not src.exists():
                if not base.is_dir():  # a namespace package (data folders) has no __init__
                    bad.append(f"{where}: no module {node.module}")
                continue
            have = defined_names(src)
            for a in node.names:
                is_sub = (base / f"{a.name}.py").exists() or (base / a.name).is_dir()
                if a.name != "*" and a.name not in have and not is_sub:
                    bad.append(f"{where}: {node.module} has no {a.name}")
    return bad


def test_every_project_import_resolves():
    assert unresolved_imports(project_files() + sorted((ROOT / "tests").rglob("*.py"))) == []


def test_the_import_check_sees_a_missing_name(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "run.py").write_text("def decoded_input():\n    pass\n")
    probe = tmp_path / "bench" / "probe.py"
    probe.write_text("def f():\n    from bench.run import _decoded\n")
    assert unresolved_imports([probe], root=tmp_path) == [
        "bench/probe.py:2: bench.run has no _decoded"
    ]
