"""Options are declared once and checked everywhere (issue 20): every registered method,
degradation kind, chain step, training recipe and metric refuses a wrong type, an
out-of-range value and an unknown key, naming the option; ids are canonical; capabilities are
enforced; the generated option tables match the declarations."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from carbench import methods
from carbench.bench.metrics.registry import parse_metric
from carbench.core.errors import BenchError
from carbench.core.options import Option, OptionError, canonical_id, parse_spec, resolve
from carbench.degradations import expand
from carbench.degradations.base import KINDS
from carbench.degradations.training import RECIPES, get_recipe
from carbench.methods.base import Sample
from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


def bad_values(opt: Option) -> list[tuple[str, str]]:
    """(value, why) pairs the declaration must refuse: a wrong type, out of range."""
    out = []
    if opt.type in ("int", "float"):
        out.append(("abc", "wrong type"))
        if opt.min is not None:
            out.append((opt.text(opt.min - 1), "below the range"))
        if opt.max is not None:
            out.append((opt.text(opt.max + 1), "above the range"))
    if opt.type == "int":
        out.append(("1.5", "not an integer"))
    if opt.type == "choice":
        out.append(("no-such-choice", "not a choice"))
    if opt.type == "bool":
        out.append(("maybe", "not a bool"))
    if opt.type in ("str", "path"):
        out.append(("", "empty"))
    return out


def valid_value(opt: Option) -> str:
    """A value the declaration accepts (for the required options around the one tested)."""
    if opt.type == "choice":
        return opt.choices[0]
    if opt.type in ("int", "float"):
        lo = opt.min if opt.min is not None else 1
        return opt.text(max(lo, min(10, opt.max if opt.max is not None else 10)))
    return "1" if opt.type == "bool" else "x"


def _method_cases():
    for name in sorted(methods.registry()):
        cls = methods.get_class(name)
        required = {o.name: valid_value(o) for o in cls.declared_options if o.required}
        for opt in cls.declared_options:
            for value, why in bad_values(opt):
                yield pytest.param(name, required, opt.name, value, id=f"{name}-{opt.name}-{why}")


@pytest.mark.parametrize("name,required,key,value", list(_method_cases()))
def test_every_method_option_refuses_bad_values(name, required, key, value):
    with pytest.raises(OptionError, match=f"option `{key}` of {name} takes"):
        methods.get_class(name)(**{**required, key: value})


@pytest.mark.parametrize("name", sorted(methods.registry()))
def test_every_method_refuses_unknown_keys(name):
    cls = methods.get_class(name)
    required = {o.name: valid_value(o) for o in cls.declared_options if o.required}
    with pytest.raises(OptionError, match=f"unknown option `nonsense` for {name} \\(known: "):
        cls(**required, nonsense="1")


def _kind_cases():
    for kind, cls in KINDS.items():
        base = {o.name: valid_value(o) for o in cls.spec_options if o.required}
        for opt in cls.spec_options:
            for value, why in bad_values(opt):
                if opt.type in ("str", "path") and kind != "chain":
                    continue  # a kind's str values are parsed by the kind (pairs, shift)
                yield pytest.param(kind, base, opt.name, value, id=f"{kind}-{opt.name}-{why}")


@pytest.mark.parametrize("kind,base,key,value", list(_kind_cases()))
def test_every_degradation_parameter_refuses_bad_values(kind, base, key, value):
    if kind == "chain":
        spec = f"chain:{key}={value}" if key == "preset" else f"chain:{key}={value},jpeg=50"
        if key == "jpeg":
            spec = f"chain:jpeg={value}"
    else:
        given = {**base, key: value}
        if kind == "jpeg2" and key not in ("q1", "q2", "pairs"):
            given = {"q1": "10", "q2": "20", **given}
        spec = f"{kind}:" + ",".join(f"{k}={v}" for k, v in given.items())
    with pytest.raises(ValueError, match=f"option `{key}` of {kind} takes"):
        expand(spec)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_degradation_refuses_unknown_keys(kind):
    with pytest.raises(ValueError, match=f"unknown option `nonsense` for {kind}"):
        expand(f"{kind}:nonsense=1")


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_option_refuses_bad_values(recipe):
    for opt in RECIPES[recipe].declared_options:
        for value, _ in bad_values(opt):
            with pytest.raises(ValueError, match=f"option `{opt.name}` of recipe {recipe} takes"):
                get_recipe(f"{recipe}:{opt.name}={value}")
    with pytest.raises(ValueError, match=f"unknown option `pach` for recipe {recipe}.*`patch`"):
        get_recipe(f"{recipe}:pach=16")


def test_metric_variants_and_border_are_checked():
    with pytest.raises(BenchError, match="unknown metric 'psnrr'; did you mean `psnr`"):
        parse_metric("psnrr")
    with pytest.raises(BenchError, match="`variant` of metric psnr takes one of: rgb, y, y-float"):
        parse_metric("psnr:yy")
    with pytest.raises(BenchError, match="`border` of metric psnr takes int 0-4096, got '-1'"):
        parse_metric("psnr:y@-1")
    with pytest.raises(BenchError, match="`border` of metric ssim takes int 0-4096, got 'x'"):
        parse_metric("ssim@x")
    assert parse_metric("psnr:y@4").id == "psnr:y@4"


def _declared_and_read(path: Path) -> tuple[set[str], set[str], list[str]]:
    """Option names declared in a file (``Option("name", ...)``), names read with
    ``.opt("name")``, and any raw ``options``/``self.options`` reads."""
    tree = ast.parse(path.read_text())
    declared, read, raw = set(), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "Option":
                declared.add(node.args[0].value)
            if isinstance(f, ast.Attribute) and f.attr == "opt":
                read.add(node.args[0].value)
            if isinstance(f, ast.Name) and f.id == "o":  # o = self.opt
                read.add(node.args[0].value)
        if isinstance(node, ast.Attribute) and node.attr == "options":
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "options"):
                raw.append(f"{path.name}:{node.lineno}")
        if isinstance(node, ast.Attribute) and node.attr == "get":
            if isinstance(node.value, ast.Name) and node.value.id in ("options", "o"):
                raw.append(f"{path.name}:{node.lineno}")
    return declared, read, raw


def test_no_option_read_in_the_code_is_undeclared():
    files = sorted((ROOT / "methods").glob("*.py")) + [ROOT / "methods/sd/one_step.py"]
    declared_all: set[str] = set()
    for path in files:
        declared_all |= _declared_and_read(path)[0]
    for path in files:
        declared, read, raw = _declared_and_read(path)
        assert not raw, f"options read around the declarations: {raw}"
        assert read <= declared_all, f"{path.name} reads undeclared {read - declared_all}"
    # and at run time: every adapter reads only what it declares
    m = methods.get("fbcnn")
    with pytest.raises(OptionError, match="fbcnn reads option `tile`, which it does not declare"):
        m.opt("tile")


def test_issue_examples(ws, capsys):
    """The trial of issue 20: typos and options that do nothing are refused before any work."""
    assert run_cli("run", "-w", ws, "--methods", "jpeg:nonsense=1", "--no-progress") == 1
    assert "unknown option `nonsense` for jpeg (known: none)" in capsys.readouterr().err
    assert run_cli("run", "-w", ws, "--methods", "dncnn3:tile=abc", "--no-progress") == 1
    assert "unknown option `tile` for dncnn3 (known: variant)" in capsys.readouterr().err
    assert run_cli("run", "-w", ws, "--methods", "dncnn3:qf=10", "--no-progress") == 1
    assert "unknown option `qf` for dncnn3" in capsys.readouterr().err
    assert not (ws / "sets").exists()  # nothing was generated
    with pytest.raises(OptionError, match="unknown option `qff` for fbcnn.*did you mean `qf`"):
        methods.get("fbcnn:qff=10")
    assert run_cli("run", "-w", ws, "--methods", "jpge", "--no-progress") == 1
    assert "unknown method 'jpge'; did you mean `jpeg`?" in capsys.readouterr().err
    with pytest.raises(OptionError, match="option `qf` given twice"):
        methods.get("fbcnn:qf=10,qf=20")


def test_one_parser_and_canonical_ids():
    assert parse_spec("fbcnn: qf = 10 ,variant=gray") == ("fbcnn", {"qf": "10", "variant": "gray"})
    with pytest.raises(OptionError, match="'qf' is not key=value"):
        parse_spec("fbcnn:qf")
    decl = (Option("b", "int", 3), Option("a", "float", 0.5), Option("t", "int", 0, in_id=False))
    values = resolve("toy", decl, {"a": "0.50", "b": "7", "t": "9"})
    assert values == {"b": 7, "a": 0.5, "t": 9}
    assert canonical_id("toy", decl, values) == "toy:b=7"  # default and not-in-id dropped
    # defaults spelled out are the same id as the bare name
    assert methods.get("fbcnn:variant=color").id == methods.get("fbcnn").id == "fbcnn"
    assert methods.get("fbcnn:qf=010").id == "fbcnn:qf=10"
    assert methods.get("codiff:colorfix=adain,seed=0").id == "codiff"
    assert methods.get("diffbir:steps=50,cfg=4").id == "diffbir"
    assert methods.get("diffbir:version=v2.1,steps=10").id == "diffbir:version=v2.1"
    assert methods.get("supir:steps=50,cfg=4.0,churn=5").id == "supir"
    assert methods.get("supir:stage2_start=0.25,steps=20").id == "supir:stage2_start=0.25,steps=20"
    assert methods.get("promptcir:ensemble=on").id == "promptcir"
    assert methods.get("dncnn3:variant=pth").id == "dncnn3"  # same model; rows keep the sha256
    assert methods.get("external:FBCNN=/x").id == methods.get("external:name=FBCNN,dir=/y").id


def test_store_rows_are_canonical_and_unreadable_ids_refused(tmp_path):
    from carbench.bench.store import ResultStore

    store = ResultStore(tmp_path)
    row = dict(dataset="d", protocol="p", degradation="jpeg-q10", image="a", variant="psnr:rgb")
    store.append([{**row, "method": "fbcnn:variant=color", "metric": "psnr", "value": 1.0}])
    store.append([{**row, "method": "FBCNN", "metric": "psnr", "value": 2.0}])
    assert sorted(store.load().method) == ["FBCNN", "fbcnn"]  # an external name is kept
    bad = store.append([{**row, "method": "jpeg:nonsense=1", "metric": "psnr", "value": 3.0}])
    with pytest.raises(BenchError, match=f"{bad}: rows of method 'jpeg:nonsense=1' cannot be"):
        ResultStore(tmp_path).load()


def _sample(img, deg="jpeg-q10", params=None):
    return Sample("x", img, Path("-"), deg, params or {"qf": 10})


def test_capability_gray_replicate_and_colour_luma():
    from carbench.degradations.color import rgb_to_ycbcr, ycbcr_to_rgb
    from carbench.methods.base import Capabilities, Method

    class Spy(Method):
        name = "spy"
        capabilities = Capabilities(gray="replicate", colour="luma")
        seen: list = []

        def restore(self, sample):
            self.seen.append(sample.decoded.shape)
            if sample.decoded.ndim == 3:
                return np.clip(sample.decoded.astype(int) + [0, 1, 2], 0, 255).astype(np.uint8)
            return 255 - sample.decoded

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 250, (5, 7), dtype=np.uint8)
    out = Spy().restore_sample(_sample(gray))
    assert Spy.seen[-1] == (5, 7, 3)  # the channel replicated to RGB
    assert np.array_equal(out, gray + 1)  # mean of (g, g+1, g+2), rounded
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    out = Spy().restore_sample(_sample(rgb))
    assert Spy.seen[-1] == (4, 6)  # restored on Y
    ycc = rgb_to_ycbcr(rgb)
    ycc[..., 0] = 255 - np.clip(np.round(ycc[..., 0]), 0, 255)
    assert np.array_equal(out, ycbcr_to_rgb(ycc))  # Cb/Cr kept (MATLAB conversion by hand:)
    m = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
    assert np.allclose(rgb_to_ycbcr(rgb)[0, 0], m @ rgb[0, 0] / 255 + [16, 128, 128])


def test_capability_refusals_before_any_work(ws, capsys):
    """gray=refuse (JDEC on gray images), needs_bitstream (JDEC on HEVC), needs_qf (SwinIR on
    a double JPEG), a gray checkpoint on colour images: refused before anything is made."""
    assert run_cli("run", "-w", ws, "--methods", "jdec", "-p", "fbcnn-gray", "-g", "jpeg-q10") == 1
    assert "jdec takes colour images only; the set has gray images" in capsys.readouterr().err
    assert run_cli("run", "-w", ws, "--methods", "jdec", "-g", "hevc-qp30") == 1
    assert "jdec reads the .jpg bitstream itself; hevc-qp30 stores .hevc" in capsys.readouterr().err
    assert run_cli("run", "-w", ws, "--methods", "swinir", "-g", "jpeg2-q10-q20") == 1
    assert "swinir picks its model by the JPEG QF; jpeg2-q10-q20 has none" in (
        capsys.readouterr().err
    )
    assert run_cli("run", "-w", ws, "--methods", "fbcnn:variant=gray", "-g", "jpeg-q10") == 1
    assert "fbcnn:variant=gray is a gray checkpoint; the set has colour images" in (
        capsys.readouterr().err
    )
    assert not (ws / "sets").exists()


def test_generated_option_tables_match_the_declarations():
    from carbench.cli.docgen import options_markdown

    text = (ROOT / "docs" / "options.md").read_text()
    assert text == options_markdown(), "run: python -m carbench.cli.docgen > docs/options.md"
    assert "| `qf` | int 1-100 | - | yes |" in text  # a row, worked out from fbcnn's declaration


def test_listing_commands(capsys):
    assert run_cli("methods") == 0
    out = capsys.readouterr().out
    assert "fbcnn      FBCNN      cnn" in out and "Apache-2.0" in out
    assert run_cli("methods", "show", "fbcnn") == 0
    out = capsys.readouterr().out
    assert "qf       int 1-100 [default: -]" in out and "fbcnn_gray_double.pth" in out
    assert run_cli("methods", "show", "fbcn") == 1
    assert "did you mean `fbcnn`" in capsys.readouterr().err
    assert run_cli("degradations", "show", "jpeg") == 0
    assert "q       int 1-100 [default: required]" in capsys.readouterr().out
    assert run_cli("metrics", "show", "ssim") == 0
    assert "ssim:gauss11 (default)" in capsys.readouterr().out


def test_finished_rerun_imports_no_torch(tmp_path, dncnn3_weights):
    """A finished run of a torch method answers from the store: torch is never imported (it
    cost 3.3 s of a 5 s no-op re-run)."""
    code = (
        "import sys; from carbench.cli.app import main; "
        f"rc = main(['run', '-w', {str(tmp_path)!r}, '--methods', 'jpeg,dncnn3', "
        "'-g', 'jpeg-q10', '--no-progress']); print('torch' in sys.modules, rc)"
    )
    env = {"BENCH_WEIGHTS_DIR": str(dncnn3_weights), "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert first.stdout.strip().endswith("True 0"), first.stderr
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert again.stdout.strip().endswith("False 0"), again.stderr
    assert "dncnn3 sample/codiff/jpeg-q10: nothing to do (all in the store)" in again.stdout


@pytest.mark.parametrize("spec", ["codiff", "osediff:tagger=none"])
def test_missing_weights_name_the_shared_sd21_files(spec, tmp_path, monkeypatch):
    """A one-step SD adapter without weights names its own files and SD-2.1-base's in one
    message (before: only its own, and a second error after fetching them)."""
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("BENCH_SD21_PATH", str(tmp_path / "nosd"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    m = methods.get(spec)
    with pytest.raises(BenchError) as e:
        m.check_weights(("rgb",))
    msg = str(e.value)
    own = [wf.name for wf in m.weights["default"]]
    sd = [wf.relpath for wf in m.weights["sd21-base"]]
    assert all(f"{n}: get" in msg for n in own)
    assert all(str(tmp_path / p) in msg for p in sd), msg
    assert len(sd) == (4 if spec == "codiff" else 10)  # unet+vae; + text encoder, tokenizer


def test_study_options_are_declared():
    from carbench.study.model import StudyConfig

    with pytest.raises(OptionError, match="`mode` of bench study create takes one of: rating, "):
        StudyConfig("s", "rank", 0, "t")
    with pytest.raises(OptionError, match="`scale_max` of bench study create takes int 1-100"):
        StudyConfig("s", "rating", 0, "t", scale_max=1000)
    with pytest.raises(OptionError, match="`repeats` of bench study create takes int 0-1000"):
        StudyConfig("s", "rating", 0, "t", repeats=-1)
    assert StudyConfig("s", "pairwise", 0, "t").scale_max == 10


def test_names_suggest_the_closest(capsys):
    for args, msg in [
        (("generate", "-d", "LIVE"), "unknown dataset 'LIVE'; did you mean `LIVE1`?"),
        (("generate", "-p", "fbcn"), "unknown protocol 'fbcn'; did you mean `fbcnn`?"),
        (("generate", "-s", "codiff-mian"), "did you mean `codiff-main`?"),
        (("generate", "-g", "jpg:q=10"), "unknown degradation kind 'jpg'; did you mean `jpeg`?"),
    ]:
        assert run_cli(*args) == 1
        assert msg in capsys.readouterr().err
