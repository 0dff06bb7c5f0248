"""Every file under tests/data has a producing script under tests/reference, named in
tests/reference/rebuild.py (the one entry point that re-creates it), and that script names the
upstream repository and commit it runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.reference import rebuild as R


def _data_files() -> set[str]:
    return {
        p.relative_to(R.DATA).as_posix()
        for p in R.DATA.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_every_data_file_has_a_producing_script():
    named = [f for r in R.REFERENCES for f in r.files]
    assert len(named) == len(set(named)), "a file is named by two references"
    unnamed = _data_files() - set(named) - set(R.DOCS)
    assert not unnamed, f"no producing script names {sorted(unnamed)} (tests/reference/rebuild.py)"
    assert not set(named) - _data_files(), "rebuild.py names files that are not there"


def test_each_script_names_its_upstream_and_commit():
    for ref in R.REFERENCES:
        script = R.HERE / ref.script
        assert script.is_file(), script
        doc = " ".join((ast.get_docstring(ast.parse(script.read_text())) or "").split())
        assert "Usage" in doc, script.name
        for key in ref.upstream:
            up = R.UP[key]
            assert re.fullmatch(r"[0-9a-f]{40}", up.commit), up
            if key != "carbench":
                assert up.repo in doc, (script.name, up.repo)
            assert up.commit[:7] in doc, (script.name, up.commit[:7])
        assert ref.env in R.ENVS, ref
        if ref.env != "carbench":  # an environment of its own: pinned packages
            assert all("==" in p for p in R.ENVS[ref.env].packages)


def test_show_names_environment_and_command():
    text = R.show(R.find("codiff.npz")[0])
    assert "jp-guo/CODiff @86e2f0499456298613472fa164417d1cce0a0cb7" in text
    assert "diffusers==0.25.0" in text and "codiff_upstream.py" in text
    assert "command: cd " in text


def test_dncnn3_reference_is_recreated_exactly(tmp_path, data_root, shared_root):
    """The one reference cheap enough to re-create in the fast suite (under a second): run
    through the entry point's own command, then compared array by array."""
    ref, name = R.find("dncnn3.npz")
    argv, cwd = R.command(ref, tmp_path)
    argv[0] = sys.executable
    env = {"BENCH_DATA_ROOT": str(data_root), "BENCH_SHARED": str(shared_root)}
    subprocess.run(argv, cwd=cwd, env={**_os_env(), **env}, check=True, capture_output=True)
    new, old = np.load(tmp_path / "dncnn3.npz"), np.load(R.DATA / name)
    assert sorted(new.files) == sorted(old.files)
    for k in old.files:
        np.testing.assert_array_equal(new[k], old[k], err_msg=k)


def _os_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_list_names_every_file(capsys):
    assert R.main(["--list"]) == 0
    out = capsys.readouterr().out
    for ref in R.REFERENCES:
        for f in ref.files:
            assert f in out
    assert Path(R.HERE / "rebuild.py").is_file()
