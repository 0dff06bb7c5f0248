"""Re-create any file under tests/data from its producing script: the one entry point.

Usage (from the repository root)::

    python -m tests.reference.rebuild --list            # every file, its script and upstream
    python -m tests.reference.rebuild --show NAME       # repository, commit, environment, command
    python -m tests.reference.rebuild --make-env ENV    # create an environment (pinned packages)
    python -m tests.reference.rebuild NAME [--write]    # re-create NAME, compare with the stored

``NAME`` is a path under tests/data (``upstream/codiff.npz``) or its unique file name
(``codiff.npz``). Without ``--write`` the file is re-created in a temporary folder and compared
with the stored one (per array: equal, or the max absolute difference); ``--write`` replaces the
stored file. Upstream checkouts are looked up as ``$UPSTREAM_SRC/<name>`` (default
/work/upstream-src; the folder name is :attr:`Upstream.folder`), checked at the recorded commit
by hand (``git -C DIR rev-parse HEAD``, or the snapshot's commit); environments as
``$UPSTREAM_ENVS/<env>`` (default /work/upstream-envs). Every environment except ``carbench``
is a venv of its own: the pinned packages of :data:`ENVS` in its site-packages, and carbench's
site-packages after them through a ``.pth`` file (torch, numpy, OpenCV, ... at carbench's
versions, recorded per file in :attr:`Reference.recorded_with`). Scripts run outside the
project's code paths: they import upstream from the checkout given on their command line.
Everything here is carbench's; nothing of upstream's code or text is copied.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
HERE = Path(__file__).resolve().parent
#: files under tests/data that are documentation, not references
DOCS = ("upstream/README.md", "store_v0.1/README.md")


@dataclass(frozen=True)
class Upstream:
    """A public repository at one commit, checked out under ``$UPSTREAM_SRC/<folder>``."""

    repo: str  # owner/name on GitHub
    commit: str  # 40 hex digits
    folder: str

    def path(self) -> Path:
        return Path(os.environ.get("UPSTREAM_SRC", "/work/upstream-src")) / self.folder


@dataclass(frozen=True)
class Env:
    """A Python environment: pinned packages of its own, carbench's site-packages after them."""

    packages: tuple[str, ...]
    why: str

    def python(self, name: str) -> Path:
        if name == "carbench":
            return ROOT / ".venv" / "bin" / "python"
        return Path(os.environ.get("UPSTREAM_ENVS", "/work/upstream-envs")) / name / "bin/python"


UP = {
    "CODiff": Upstream("jp-guo/CODiff", "86e2f0499456298613472fa164417d1cce0a0cb7", "CODiff"),
    "DiffBIR": Upstream(
        "XPixelGroup/DiffBIR", "3f8b5304245ba0ffd6f1995e51c27c3c72d7618f", "DiffBIR"
    ),
    "DnCNN": Upstream("cszn/DnCNN", "e93b27812d3ff523a3a79d19e5e50d233d7a8d0a", "DnCNN"),
    "FBCNN": Upstream("jiaxi-jiang/FBCNN", "54d1831927506b3247e2d4d245abb4f4dab1a1cd", "FBCNN"),
    "JDEC": Upstream("WooKyoungHan/JDEC", "e9fe8354754dd062dbf1defebb220e290507edd2", "JDEC"),
    "OSEDiff": Upstream("cswry/OSEDiff", "fcc4f09c7ed66a9bc0ba9433940d76b343142426", "OSEDiff"),
    "PromptCIR": Upstream(
        "lbc12345/PromptCIR-NTIRE24", "3506b1aa0e6588fdf4e0b8345d90679adf1e2220", "PromptCIR"
    ),
    "SUPIR": Upstream("Fanghua-Yu/SUPIR", "bda91af2000042f8bedfec8897d92917e67c1d88", "SUPIR"),
    "SwinIR": Upstream("JingyunLiang/SwinIR", "6545850fbf8df298df73d81f3e8cba638787c8bd", "SwinIR"),
    "carbench": Upstream(
        "carbench (this repository)", "289930dd3a98ec1490f3b023fbfbf8a4c4a5c0d6", "carbench-0.1"
    ),
}

ENVS = {
    "carbench": Env((), "carbench's own .venv (upstream code that runs on today's libraries)"),
    "cnn": Env(
        ("omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3"),
        "FBCNN, PromptCIR, JDEC, SwinIR, DiffBIR (omegaconf 2.3.0: DiffBIR's pin)",
    ),
    "supir": Env(
        ("omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3"),
        "SUPIR's bundled sgm (omegaconf: SUPIR's pin)",
    ),
    "d25": Env(
        (
            "diffusers==0.25.0",
            "peft==0.9.0",
            "transformers==4.37.2",
            "accelerate==1.3.0",
            "huggingface_hub==0.25.2",
            "tokenizers==0.15.2",
        ),
        "CODiff / OSEDiff's pins (diffusers 0.25, peft 0.9, transformers 4.37.2, accelerate 1.3); "
        "huggingface_hub 0.25.2 is the newest with cached_download (diffusers 0.25 imports it)",
    ),
    "ram": Env(
        (
            "transformers==4.28.1",
            "loralib==0.1.2",
            "tokenizers==0.13.3",
            "huggingface_hub==0.25.2",
            "fairscale==0.4.13",
        ),
        "OSEDiff's RAM/DAPE tagger (its requirements: transformers 4.28.1, loralib 0.1.2)",
    ),
}

#: carbench's site-packages as they were when the files were recorded (what the .pth gives)
BASE = "torch 2.14.1+cu130 CPU, numpy 2.4, OpenCV 5.1.0, timm 1.0.31, einops 0.8.2"


@dataclass(frozen=True)
class Reference:
    """Files under tests/data made by one run of one script."""

    files: tuple[str, ...]  # paths under tests/data
    script: str  # file name under tests/reference
    upstream: tuple[str, ...]  # keys of UP, in the script's argument order
    env: str  # key of ENVS
    args: tuple[str, ...] = ("{up0}", "{out}")  # {upN}: checkout N, {out}: first output file,
    # {outdir}: the folder the outputs go to
    recorded_with: str = BASE
    cwd: str = "root"  # "root" (repository root) or "upstream" ($UPSTREAM_SRC)
    needs: tuple[str, ...] = ("BENCH_DATA_ROOT",)  # environment variables the script reads
    note: str = ""


REFERENCES = (
    Reference(
        ("upstream/swinir_jpeg_car.npz", "upstream/swinir_color_jpeg_car.npz"),
        "swinir_reference.py",
        ("SwinIR",),
        "cnn",
        ("{up0}", "{outdir}"),
    ),
    Reference(("swinir_car_keys.json",), "swinir_keys_upstream.py", ("SwinIR",), "cnn", needs=()),
    Reference(("upstream/fbcnn.npz",), "fbcnn_upstream.py", ("FBCNN",), "cnn"),
    Reference(
        ("upstream/fbcnn_recipes.npz",),
        "fbcnn_recipes.py",
        ("FBCNN", "CODiff"),
        "cnn",
        ("{up0}", "{up1}", "{out}"),
        needs=(),
    ),
    Reference(("upstream/promptcir.npz",), "promptcir_upstream.py", ("PromptCIR",), "cnn"),
    Reference(
        ("upstream/jdec.npz",),
        "jdec_upstream.py",
        ("JDEC",),
        "cnn",
        recorded_with=BASE + ", jpeglib 1.0.2",
    ),
    Reference(
        ("upstream/jdec_native.npz",),
        "jdec_upstream.py",
        ("JDEC",),
        "cnn",
        ("{up0}", "{out}", "--native"),
        recorded_with=BASE + ", jpeglib 1.0.2",
        note="a 224x224 crop: the token grid of upstream's stored attention mask",
    ),
    Reference(("upstream/diffbir.npz",), "diffbir_upstream.py", ("DiffBIR",), "cnn"),
    Reference(("upstream/diffbir_loop.npz",), "diffbir_loop_upstream.py", ("DiffBIR",), "cnn"),
    Reference(
        ("upstream/diffbir_toy.npz",), "diffbir_toy_upstream.py", ("DiffBIR",), "cnn", needs=()
    ),
    Reference(
        ("upstream/supir.npz",),
        "supir_upstream.py",
        ("SUPIR",),
        "supir",
        needs=(),
        recorded_with=BASE + ", open_clip 3.3.0, transformers 5.24",
    ),
    Reference(
        ("upstream/supir_edm50.npz",), "supir_sampler_upstream.py", ("SUPIR",), "supir", needs=()
    ),
    Reference(
        ("supir_ckpt_keys.json.gz",),
        "supir_keys_upstream.py",
        ("SUPIR",),
        "supir",
        needs=(),
        recorded_with=BASE + ", open_clip 3.3.0, transformers 5.24",
    ),
    Reference(
        ("upstream/onestep.npz",),
        "onestep_upstream.py",
        ("CODiff",),
        "carbench",
        recorded_with=BASE + ", diffusers 0.42.1",
        cwd="upstream",
        note="diffusers 0.42.1; under 0.25.0 (--env d25) the same to the bit: see the README",
    ),
    Reference(
        ("upstream/vaehook.npz",),
        "vaehook_upstream.py",
        ("CODiff",),
        "carbench",
        recorded_with=BASE + ", diffusers 0.42.1",
        cwd="upstream",
    ),
    Reference(
        ("upstream/codiff.npz",),
        "codiff_upstream.py",
        ("CODiff",),
        "d25",
        recorded_with=BASE + ", open_clip 3.3.0",
        cwd="upstream",
        note="recorded on another CPU (see the README)",
    ),
    Reference(
        ("upstream/osediff.npz",),
        "osediff_upstream.py",
        ("OSEDiff",),
        "d25",
        recorded_with=BASE + ", open_clip 3.3.0",
        cwd="upstream",
        note="recorded on another CPU (see the README)",
    ),
    Reference(
        ("upstream/dncnn3.npz",),
        "dncnn3_matconvnet.py",
        ("DnCNN",),
        "carbench",
        ("{out}",),
        recorded_with="numpy 2.4.6, h5py 3.16.0, Pillow 13.0.0, OpenCV 5.1.0",
        needs=("BENCH_DATA_ROOT", "BENCH_SHARED"),
        note="a second implementation of MatConvNet's forward; the .mat is read from "
        "$BENCH_SHARED, the DnCNN checkout is not used",
    ),
    Reference(
        ("ram_swinl_keys.json",),
        "ram_keys_upstream.py",
        ("OSEDiff",),
        "ram",
        needs=(),
        recorded_with="torch 2.14.1 CPU, transformers 4.28.1, loralib 0.1.2, timm 1.0.31",
    ),
    Reference(
        ("ram_tagger_reference.json",),
        "ram_tagger_upstream.py",
        ("OSEDiff",),
        "ram",
        recorded_with="torch 2.14.1 CPU, transformers 4.28.1, loralib 0.1.2, timm 1.0.31",
    ),
    Reference(
        ("store_v0.1/baseline.csv", "store_v0.1/part-20261203T074150-a3d118b290.parquet"),
        "store_v0_1.py",
        ("carbench",),
        "carbench",
        ("{up0}", "{outdir}"),
        needs=(),
        recorded_with="carbench 0.1.0's own dependencies",
        note="carbench's own output at release 0.1.0; the part name holds the write time "
        "and a random id, so a rebuild gives other names and the same rows",
    ),
)


def find(name: str) -> tuple[Reference, str]:
    """The reference producing ``name`` (a path under tests/data or a unique file name)."""
    hits = [(r, f) for r in REFERENCES for f in r.files if name in (f, Path(f).name)]
    if len(hits) != 1:
        known = sorted(f for r in REFERENCES for f in r.files)
        raise SystemExit(f"{name!r}: {'ambiguous' if hits else 'unknown'}; known: {known}")
    return hits[0]


def command(ref: Reference, outdir: Path, env: str | None = None) -> tuple[list[str], Path]:
    """(argv, cwd) of one run writing into ``outdir`` (in ``env``, default the recorded one)."""
    env = env or ref.env
    subs = {f"up{i}": str(UP[u].path()) for i, u in enumerate(ref.upstream)}
    subs.update(out=str(outdir / Path(ref.files[0]).name), outdir=str(outdir))
    argv = [str(ENVS[env].python(env)), str(HERE / ref.script)]
    argv += [a.format(**subs) for a in ref.args]
    cwd = ROOT if ref.cwd == "root" else Path(os.environ.get("UPSTREAM_SRC", "/work/upstream-src"))
    return argv, cwd


def show(ref: Reference) -> str:
    argv, cwd = command(ref, Path("OUT"))
    lines = [f"files: {', '.join(ref.files)}", f"script: tests/reference/{ref.script}"]
    lines += [
        f"upstream: {UP[u].repo} @{UP[u].commit} (checkout {UP[u].path()})" for u in ref.upstream
    ]
    env = ENVS[ref.env]
    lines.append(
        f"environment: {ref.env} ({env.why}); own packages: "
        f"{', '.join(env.packages) or 'none'}; recorded with {ref.recorded_with}"
    )
    env_vars = " ".join(f"{v}=..." for v in ref.needs)
    lines.append(f"command: cd {cwd} && {env_vars} OMP_NUM_THREADS=1 {' '.join(argv)}")
    if ref.note:
        lines.append(f"note: {ref.note}")
    return "\n".join(lines)


def make_env(name: str) -> Path:
    """Create ``$UPSTREAM_ENVS/name``: a venv from carbench's interpreter, the pinned packages,
    then carbench's site-packages through ``zz_carbench.pth`` (after its own)."""
    import site
    import venv

    if name == "carbench":
        raise SystemExit("carbench's environment is the project's .venv (scripts/setup.sh)")
    env = ENVS[name]
    folder = ENVS[name].python(name).parents[1]
    venv.EnvBuilder(with_pip=True).create(folder)
    py = folder / "bin" / "python"
    out = subprocess.run(
        [str(py), "-c", "import site; print(site.getsitepackages()[0])"],
        check=True,
        capture_output=True,
        text=True,
    )
    (Path(out.stdout.strip()) / "zz_carbench.pth").write_text(site.getsitepackages()[0] + "\n")
    if env.packages:
        subprocess.run([str(py), "-m", "pip", "install", "--no-deps", *env.packages], check=True)
    return folder


def _json_diff(a, b, path: str, diffs: list[float], other: list[str]) -> None:
    """Walk two parsed JSON values: numeric differences into ``diffs``, other ones' paths into
    ``other``."""
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool):
        if a != b:
            diffs.append(abs(a - b))
    elif isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for k in a:
            _json_diff(a[k], b[k], f"{path}/{k}", diffs, other)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _json_diff(x, y, f"{path}[{i}]", diffs, other)
    elif a != b:
        other.append(path or "/")


def compare(new: Path, old: Path) -> list[str]:
    """Human-readable differences between a re-created file and the stored one."""
    import numpy as np

    if old.suffix == ".npz":
        a, b = np.load(new), np.load(old)
        out = []
        for k in sorted(set(a.files) | set(b.files)):
            if k not in a.files or k not in b.files:
                out.append(f"{k}: only in {'stored' if k in b.files else 'new'}")
                continue
            x, y = a[k], b[k]
            if x.shape != y.shape or x.dtype.kind != y.dtype.kind:
                out.append(f"{k}: {x.dtype}{x.shape} vs stored {y.dtype}{y.shape}")
            elif x.dtype.kind in "fc":
                d = float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max(initial=0))
                out.append(f"{k}: max |diff| {d:.3g}")
            elif x.dtype.kind in "iu" and not np.array_equal(x, y):
                d = np.abs(x.astype(np.int64) - y.astype(np.int64))
                out.append(f"{k}: max |diff| {d.max()}, {int((d > 0).sum())} of {d.size} differ")
            else:
                out.append(f"{k}: {'equal' if np.array_equal(x, y) else 'DIFFERENT'}")
        return out
    if old.suffix in (".json", ".gz"):
        import gzip

        def load(p: Path):
            opener = gzip.open if p.suffix == ".gz" else open
            with opener(p, "rt") as f:
                return json.load(f)

        a, b = load(new), load(old)
        if a == b:
            return ["equal"]
        diffs: list[float] = []
        other: list[str] = []
        _json_diff(a, b, "", diffs, other)
        worst = f"numbers max |diff| {max(diffs):.3g}" if diffs else "numbers equal"
        return [worst] + [f"DIFFERENT {k}" for k in other[:20]]
    if old.suffix == ".parquet":  # a result store: the metric rows, not timings or hosts
        import pandas as pd

        cols = ["dataset", "protocol", "degradation", "method", "image", "metric", "variant"]
        a, b = (pd.read_parquet(p).sort_values(cols).reset_index(drop=True) for p in (new, old))
        same = a[cols].equals(b[cols])
        d = float((a["value"] - b["value"]).abs().max()) if same else float("nan")
        return [f"rows {'equal' if same else 'DIFFERENT'}; value max |diff| {d:.3g}"]
    return ["equal" if new.read_bytes() == old.read_bytes() else "DIFFERENT (bytes)"]


def rebuild(name: str, write: bool, env: str | None = None) -> int:
    ref, _ = find(name)
    print(show(ref))
    missing = [v for v in ref.needs if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} first")
    with tempfile.TemporaryDirectory() as tmp:
        argv, cwd = command(ref, Path(tmp), env)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(argv, cwd=cwd, env=env, check=True)
        made = {p.name: p for p in Path(tmp).rglob("*") if p.is_file()}
        for f in ref.files:
            stored = DATA / f
            new = made.get(Path(f).name)
            parts = [p for n, p in made.items() if n.startswith("part-")]
            if new is None and stored.suffix == ".parquet" and len(parts) == 1:
                new = parts[0]  # store_v0.1: the part file's name is new each time
            if new is None:
                print(f"{f}: not re-created under this name (made: {sorted(made)})")
                continue
            print(f"== {f}")
            for line in compare(new, stored):
                print("  " + line)
            if write:
                shutil.copyfile(new, stored)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reference.rebuild", description=__doc__)
    p.add_argument("name", nargs="?", help="file under tests/data")
    p.add_argument("--list", action="store_true")
    p.add_argument("--show", action="store_true")
    p.add_argument("--make-env", metavar="ENV")
    p.add_argument("--write", action="store_true", help="replace the stored file")
    p.add_argument("--env", choices=sorted(ENVS), help="run in another environment (e.g. d25)")
    a = p.parse_args(argv)
    if a.make_env:
        print(make_env(a.make_env))
        return 0
    if a.list or not a.name:
        for r in REFERENCES:
            ups = ", ".join(f"{UP[u].repo} @{UP[u].commit[:7]}" for u in r.upstream)
            print(f"{', '.join(r.files)}\n    {r.script} [{r.env}] {ups}")
        return 0
    if a.show:
        print(show(find(a.name)[0]))
        return 0
    return rebuild(a.name, a.write, a.env)


if __name__ == "__main__":
    sys.exit(main())
