"""``bench generate`` end to end: files, manifest, determinism, resume, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image

from carbench.bench.generate import finished_records
from carbench.core.errors import PARTIAL_FAILURE_EXIT
from carbench.core.workspace import Workspace
from conftest import run_cli

SAMPLE = ["astronaut", "chelsea", "coffee", "rocket"]


def _tree(root: Path) -> dict[str, bytes]:
    """Every file except journals/manifests (which hold provenance such as paths)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".journal" not in p.parts and p.suffix != ".parquet"
    }


def test_generate_sample_default(ws, capsys):
    assert run_cli("generate", "-w", ws) == 0
    out = capsys.readouterr().out
    assert "sample/codiff: generated 12" in out
    set_dir = ws / "sets" / "sample" / "codiff"
    for deg in ("jpeg-q5", "jpeg-q10", "jpeg-q20"):
        assert sorted(p.stem for p in (set_dir / deg).glob("*.jpg")) == SAMPLE
    # chelsea (451x300) and rocket (640x427) are resized to multiples of 8 by the protocol
    assert sorted(p.stem for p in (set_dir / "gt").glob("*.png")) == ["chelsea", "rocket"]
    m = pd.read_parquet(set_dir / "jpeg-q10" / "manifest.parquet")
    assert list(m.image) == SAMPLE
    row = m.set_index("image").loc["chelsea"]
    assert (row.width, row.height) == (448, 296)
    assert row.gt_path == "sets/sample/codiff/gt/chelsea.png" and row.param_qf == 10
    assert row.param_chroma == "420" and "libjpeg-turbo" in row.encoder
    jpg = (ws / row.bitstream_path).read_bytes()
    assert row.bytes == len(jpg) and row.bpp == pytest.approx(len(jpg) * 8 / (448 * 296))
    # the bitstream is exactly what the reference script would make from the resized GT
    gt = np.asarray(Image.open(ws / row.gt_path))
    ref = cv2.imencode(".jpg", cv2.cvtColor(gt, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert jpg == ref[1].tobytes()
    lanczos = Image.fromarray(skimage.data.chelsea()).resize((448, 296), Image.LANCZOS)
    assert np.array_equal(gt, np.asarray(lanczos))


def test_rerun_does_no_work_and_says_so(ws, capsys):
    assert run_cli("generate", "-w", ws, "-g", "jpeg:q=10") == 0
    before = {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert run_cli("generate", "-w", ws, "-g", "jpeg-q10") == 0
    assert (
        "nothing to do, all 4 image x degradation pairs already generated"
        in capsys.readouterr().out
    )
    assert {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file()} == before


def test_same_input_same_bytes_and_parallel_equals_serial(tmp_path):
    specs = ["-g", "jpeg:q=5,50", "-g", "jpeg2:pairs=10/90,shift=0,4x0", "-p", "codiff"]
    assert run_cli("generate", "-w", tmp_path / "a", *specs) == 0
    assert run_cli("generate", "-w", tmp_path / "b", "-j", "2", *specs) == 0
    assert run_cli("generate", "-w", tmp_path / "c", "-j", "2", "--backend", "loky", *specs) == 0
    a = _tree(tmp_path / "a")
    assert len(a) > 20 and a == _tree(tmp_path / "b") == _tree(tmp_path / "c")


def test_shifted_double_jpeg_crops_gt(ws):
    assert run_cli("generate", "-w", ws, "-p", "fbcnn", "-g", "jpeg2:q1=10,q2=30,shift=4") == 0
    d = ws / "sets" / "sample" / "fbcnn" / "jpeg2-q10-q30-s4x4"
    m = pd.read_parquet(d / "manifest.parquet").set_index("image")
    gt = np.asarray(Image.open(ws / m.loc["coffee"].gt_path))
    assert np.array_equal(gt, skimage.data.coffee()[4:, 4:])
    assert m.loc["coffee"].param_grid == "misaligned" and m.loc["coffee"].param_shift_rows == 4


@pytest.mark.ffmpeg
def test_bpg_suite_without_bpgenc_records_hevc(ws, ffmpeg, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_BPGENC", "/nonexistent/bpgenc")
    assert run_cli("generate", "-w", ws, "-g", "bpg:qp=40") == 0
    d = ws / "sets" / "sample" / "codiff" / "hevc-qp40"
    m = pd.read_parquet(d / "manifest.parquet")
    assert set(m.degradation) == {"hevc-qp40"} and m.encoder.str.contains("libx265").all()
    assert sorted(p.stem for p in (d / "decoded").glob("*.png")) == SAMPLE
    assert not (ws / "sets" / "sample" / "codiff" / "bpg-qp40").exists()


def test_folder_dataset_with_bad_images(tmp_path, ws, coffee, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(coffee).save(folder / "ok.png")
    Image.fromarray(coffee[:100, :99]).save(folder / "odd.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    Image.fromarray(coffee[:5, :5]).save(folder / "tiny.png")
    code = run_cli("generate", "-w", ws, "-d", folder, "-p", "fbcnn", "-g", "jpeg-q10")
    assert code == PARTIAL_FAILURE_EXIT  # the good images are written, the failure is visible
    cap = capsys.readouterr()
    assert "mine/fbcnn: generated 2, already present 0, failed images 2" in cap.out
    assert "broken.png: corrupt image (PNG signature" in cap.err
    assert "tiny.png: image is 5x5 pixels" in cap.err
    assert sorted(p.name for p in (ws / "sets/mine/fbcnn/jpeg-q10").glob("*.jpg")) == [
        "odd.jpg",
        "ok.jpg",
    ]
    assert (
        run_cli(
            "generate",
            "-w",
            ws,
            "-d",
            folder,
            "-p",
            "fbcnn",
            "-g",
            "jpeg-q20",
            "--on-error",
            "fail",
        )
        == 1
    )
    assert "error: " in capsys.readouterr().err


def test_bad_cli_values(ws, capsys):
    assert run_cli("generate", "-w", ws, "-g", "jpeg:q=0") == 1
    assert "option `q` of jpeg takes int 1-100, got '0'" in capsys.readouterr().err
    assert run_cli("generate", "-w", ws, "-d", "NoSuchSet") == 1
    assert "unknown dataset 'NoSuchSet'" in capsys.readouterr().err
    assert run_cli("generate", "-w", ws, "-p", "mystery") == 1
    assert "unknown protocol 'mystery'" in capsys.readouterr().err


def test_killed_run_resumes_to_identical_result(tmp_path):
    """SIGKILL a real `bench generate` mid-run, resume, compare with an uninterrupted run."""
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    base = skimage.data.astronaut()
    for i in range(24):
        crop = np.roll(base, int(rng.integers(0, 400)), axis=1)
        Image.fromarray(crop).save(src / f"img{i:02d}.png")
    args = [
        "generate",
        "-d",
        str(src),
        "-p",
        "fbcnn",
        "-g",
        "jpeg:q=5,10,20,40,60,80,95",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "carbench.cli", *args, "-w", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rec_root = killed / "sets" / "src" / "fbcnn"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(rec_root.glob("jpeg-q95/*.jpg"))) < 5:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(finished_records(Workspace(killed), "src", "fbcnn"))
    assert 7 <= n_before < 24 * 7, "the kill should land mid-run"
    assert run_cli(*args, "-w", killed) == 0
    assert run_cli(*args, "-w", tmp_path / "clean") == 0
    assert _tree(killed) == _tree(tmp_path / "clean")
    assert not [p for p in killed.rglob("*.tmp")]
    m = pd.read_parquet(rec_root / "jpeg-q40" / "manifest.parquet")
    assert len(m) == 24 and m.image.is_unique


def test_records_are_json_with_provenance(ws):
    assert run_cli("generate", "-w", ws, "-g", "jpeg-q10-444") == 0
    rec = finished_records(Workspace(ws), "sample", "codiff")[("jpeg-q10-444", "coffee")]
    assert rec["param_chroma"] == "444" and rec["carbench"].startswith("0.1.0")
    assert len(rec["bitstream_sha256"]) == 64 and rec["source_sha256"] == rec["gt_sha256"]


def test_disk_full_mid_run_loses_nothing_and_resumes(tmp_path, capsys):
    """A real 500 KiB tmpfs as workspace: the run stops with a clear message, what was
    finished stays recorded, and after the disk grows a re-run completes identically."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=500k", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode().strip())
    src = tmp_path / "sample"
    src.mkdir()
    for name in SAMPLE:
        Image.fromarray(getattr(skimage.data, name)()).save(src / f"{name}.png")
    try:
        args = ["generate", "-d", src, "-g", "jpeg:q=90,95", "-p", "fbcnn", "--no-progress"]
        assert run_cli(*args, "-w", mnt) == 1
        assert "disk full while" in capsys.readouterr().err
        finished = finished_records(Workspace(mnt), "sample", "fbcnn")
        assert 0 < len(finished) < 8
        for rec in finished.values():  # every recorded file is complete
            assert len((mnt / rec["bitstream_path"]).read_bytes()) == rec["bytes"]
        assert not list(mnt.rglob("*.tmp"))
        subprocess.run(["mount", "-o", "remount,size=20m", str(mnt)], check=True)
        assert run_cli(*args, "-w", mnt) == 0
        assert f"already present {len(finished)}" in capsys.readouterr().out
        assert run_cli(*args, "-w", tmp_path / "clean") == 0
        assert _tree(mnt) == _tree(tmp_path / "clean")
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


#: record sets of the shapes manifests hold: strings, ints, floats, bools, all-None columns,
#: ints and floats mixed in one column, unicode, a column only some rows have
MANIFEST_CASES = [
    [{"image": "a", "bytes": 10, "bpp": 0.5, "decoded_path": None, "note": "ü ✓"}],
    [
        {"image": "b", "bytes": 3, "param_q": 10, "extra_gt": True, "extra_mix": 1},
        {"image": "a", "bytes": 4, "param_q": 10, "extra_gt": False, "extra_mix": 2.25},
        {"image": "c", "bytes": 5, "param_q": 10, "late": "only here", "extra_mix": None},
    ],
    [{"image": str(i), "bpp": i / 7, "big": 2**40 + i, "n": None} for i in range(300)],
]


@pytest.mark.parametrize("records", MANIFEST_CASES)
def test_manifest_without_pandas_is_the_same_file(records):
    """The JSON-reader table (no pandas import) writes the bytes ``pa.table`` writes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from carbench.bench.generate import manifest_table, manifest_table_via_json

    rows = sorted(records, key=lambda r: r["image"])
    columns = list(dict.fromkeys(k for r in rows for k in r))
    files = []
    for table in (manifest_table(rows, columns), manifest_table_via_json(rows, columns)):
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        files.append(buf.getvalue().to_pybytes())
    assert files[0] == files[1]


def test_manifest_with_other_values_takes_pyarrows_inference():
    from carbench.bench.generate import manifest_table_via_json

    for value in (np.int64(3), [1, 2], float("nan"), 2**63):
        assert manifest_table_via_json([{"image": "a", "v": value}], ["image", "v"]) is None
