"""A sweep of bad inputs and environments: each gets its exact message, naming the file or
value, and nothing else is lost (the good image next to a bad one is still generated)."""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from carbench.core.errors import PARTIAL_FAILURE_EXIT
from conftest import run_cli

COFFEE = skimage.data.coffee()


def _png(img, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG", **kw)
    return buf.getvalue()


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png() -> bytes:
    """A valid PNG header announcing 70000 x 70000 RGB pixels (4.9 gigapixels)."""
    ihdr = struct.pack(">IIBBBBB", 70000, 70000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def _rgba(opaque: bool) -> bytes:
    a = np.dstack([COFFEE[:64, :64], np.full((64, 64), 255, np.uint8)])
    if not opaque:
        a[3, 3, 3] = 0
    return _png(a)


def _cmyk() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(COFFEE[:64, :64]).convert("CMYK").save(buf, "JPEG")
    return buf.getvalue()


def _rgb48() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((32, 32, 3), 40000, np.uint16))
    return buf.tobytes()


# (case, file name, bytes, message that must appear after "<file>: ", or None = must work)
IMAGE_CASES = [
    ("truncated PNG", "trunc.png", _png(COFFEE)[:3000], "corrupt or truncated image"),
    (
        "corrupt PNG",
        "garbage.png",
        b"\x89PNG\r\n\x1a\n" + b"\x07" * 300,
        "corrupt image (PNG signature, unreadable data)",
    ),
    ("truncated JPEG", "trunc.jpg", _jpeg(COFFEE)[:4000], "corrupt or truncated image"),
    ("corrupt JPEG", "garbage.jpg", b"\xff\xd8\xff" + b"\x00" * 400, "corrupt "),
    ("zero bytes", "empty.png", b"", "empty file (0 bytes)"),
    (
        "text with image extension",
        "notes.png",
        b"just some text\n" * 20,
        "not an image file Pillow can read (unknown format)",
    ),
    (
        "16-bit gray",
        "deep.png",
        _png(np.full((32, 32), 4000, np.uint16)),
        "16-bit samples (mode I;16)",
    ),
    ("48-bit RGB", "deep_rgb.png", _rgb48(), "16-bit samples"),
    (
        "transparent alpha",
        "alpha.png",
        _rgba(False),
        "has an alpha channel with transparent pixels; flatten it onto a background first",
    ),
    ("CMYK", "print.jpg", _cmyk(), "CMYK image; convert it to RGB with a colour-managed tool"),
    ("1x1", "dot.png", _png(COFFEE[:1, :1]), "image is 1x1 pixels; carbench needs at least 8x8"),
    ("7x9", "thin.png", _png(COFFEE[:9, :7]), "image is 7x9 pixels; carbench needs at least 8x8"),
    ("huge dimensions", "huge.png", _huge_png(), "image too large to decode safely"),
    ("wrong extension (PNG named .jpg)", "really_png.jpg", _png(COFFEE[:64, :64]), None),
    ("opaque alpha", "opaque.png", _rgba(True), None),
    (
        "palette",
        "pal.png",
        _png(np.asarray(Image.fromarray(COFFEE[:64, :64]).quantize(16).convert("RGB"))),
        None,
    ),
    ("odd size 9x13", "odd.png", _png(COFFEE[:13, :9]), None),
]


@pytest.mark.parametrize(
    ("case", "name", "data", "message"), IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES]
)
def test_image_case(tmp_path, ws, capsys, case, name, data, message):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / name).write_bytes(data)
    Image.fromarray(COFFEE[:40, :48]).save(folder / "good.png")
    code = run_cli(
        "generate", "-w", ws, "-d", folder, "-p", "fbcnn", "-g", "jpeg-q10", "--no-progress"
    )
    assert code == (0 if message is None else PARTIAL_FAILURE_EXIT)  # CI notices a failed image
    err = capsys.readouterr().err
    made = sorted(p.name for p in (ws / "sets/set/fbcnn/jpeg-q10").glob("*.jpg"))
    if message is None:
        assert "failed" not in err
        assert made == sorted(["good.jpg", Path(name).stem + ".jpg"])
    else:
        assert f"{folder / name}: {message}" in err
        assert made == ["good.jpg"]  # the good image is not lost


def test_unreadable_folder_as_unprivileged_user(tmp_path):
    """chmod 000 stops everyone but root: run bench as `nobody` (setpriv) against it."""
    if os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists():
        pytest.skip("needs root and setpriv to drop privileges")
    base = Path(f"/tmp/carbench-perm-{os.getpid()}")
    base.mkdir(mode=0o777, exist_ok=True)
    try:
        os.chmod(base, 0o777)
        locked = base / "locked"
        locked.mkdir()
        Image.fromarray(COFFEE[:32, :32]).save(locked / "a.png")
        os.chmod(locked, 0)
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "HOME": str(base),
        }
        r = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "carbench.cli",
                "generate",
                "-d",
                str(locked),
                "-w",
                str(base / "ws"),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 1, r.stderr
        assert f"error: {locked}: permission denied (cannot list the folder)" in r.stderr
    finally:
        os.chmod(base / "locked", stat.S_IRWXU)
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_read_only_workspace(tmp_path, capsys):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        assert run_cli("generate", "-w", mnt / "ws", "--no-progress") == 1
        assert (
            f"workspace {mnt / 'ws'} is not writable (Read-only file system)"
            in capsys.readouterr().err
        )
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_folder_problems(tmp_path, ws, capsys):
    assert run_cli("generate", "-w", ws, "-d", tmp_path / "nowhere") == 1
    assert f"{tmp_path / 'nowhere'}: folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli("generate", "-w", ws, "-d", tmp_path / "empty") == 1
    assert f"{tmp_path / 'empty'}: no images found" in capsys.readouterr().err
    dup = tmp_path / "dup"
    dup.mkdir()
    Image.fromarray(COFFEE[:32, :32]).save(dup / "a.png")
    Image.fromarray(COFFEE[:32, :32]).save(dup / "a.bmp")
    assert run_cli("generate", "-w", ws, "-d", dup) == 1
    assert "two files share the image id 'a' (a.bmp, a.png)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "-g", "jpeg:q=0"], "option `q` of jpeg takes int 1-100, got '0'"),
        (
            ["generate", "-g", "jpeg:q=101"],
            "option `q` of jpeg takes int 1-100, got '101'",
        ),
        (["generate", "-g", "bpg:qp=60"], "option `qp` of bpg takes int 0-51, got '60'"),
        (["generate", "-g", "jpeg2:q1=10,q2=20,shift=x"], "shift must be N or ROWSxCOLS"),
        (["generate", "-d", "Nope"], "unknown dataset 'Nope'"),
        (["generate", "-p", "nope"], "unknown protocol 'nope'"),
        (["generate", "--shard", "3/2"], "--shard must be i/n with 0 <= i < n"),
        (["generate", "--backend", "mpi"], "backend must be one of threading"),
        (["run", "--metrics", "psnrx"], "unknown metric 'psnrx'"),
        (["run", "--dtype", "fp8"], "--dtype must be one of auto, fp32, fp16, bf16, got 'fp8'"),
        (["run", "--methods", "nosuch"], "unknown method 'nosuch'"),
        (["run", "--methods", "fbcnn"], "method fbcnn cannot run, weight file(s) missing"),
        (["run", "--metrics", "maniqa"], "metric maniqa cannot load, weight file(s) missing"),
        (["report", "-f", "docx"], "unknown report format 'docx'"),
        (["check", "-b", "/nonexistent/base.csv"], "the result store is empty"),
    ],
)
def test_bad_cli_values(ws, capsys, args, message):
    assert run_cli(*args, "-w", ws) == 1  # a clear error that stops the command
    assert message in capsys.readouterr().err
    assert not (ws / "results").exists()


def test_generate_with_most_images_unreadable(tmp_path, ws, capsys):
    """5 of 8 images unreadable: the other 3 are written, the summary names all 5, and the
    exit code is non-zero so a CI script notices. A palette PNG is said once and recorded."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(5):
        (folder / f"bad{i}.png").write_bytes(_png(COFFEE[:40, :40])[: 200 + i])
    for i in range(2):
        Image.fromarray(COFFEE[i * 40 : i * 40 + 40, :48]).save(folder / f"good{i}.png")
    Image.fromarray(COFFEE[:40, :48]).quantize(16).save(folder / "pal.png")
    code = run_cli(
        "generate", "-w", ws, "-d", folder, "-p", "fbcnn", "-g", "jpeg-q10", "--no-progress"
    )
    assert code == PARTIAL_FAILURE_EXIT
    out = capsys.readouterr()
    assert all(f"{folder / f'bad{i}.png'}: corrupt or truncated image" in out.err for i in range(5))
    assert "5 image(s) failed and were skipped" in out.err
    assert out.err.count("palette expanded to RGB") == 1
    sets = ws / "sets/mixed/fbcnn/jpeg-q10"
    assert sorted(p.name for p in sets.glob("*.jpg")) == ["good0.jpg", "good1.jpg", "pal.jpg"]
    import pandas as pd

    m = pd.read_parquet(sets / "manifest.parquet").set_index("image")
    assert m.loc["pal", "source_note"] == "palette expanded to RGB"
    assert m.loc["good0", "source_note"] == ""


def test_shift_larger_than_image(tmp_path, ws, capsys):
    folder = tmp_path / "small"
    folder.mkdir()
    Image.fromarray(COFFEE[:12, :12]).save(folder / "s.png")
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
            "jpeg2:q1=10,q2=20,shift=8",
            "--no-progress",
        )
        == PARTIAL_FAILURE_EXIT
    )
    assert (
        f"{folder / 's.png'}: jpeg2-q10-q20-s8x8: a shift of 8x8 (rows x columns) leaves "
        "4x4 pixels of a 12x12 image; at least 8x8 must remain"
    ) in capsys.readouterr().err


def test_missing_ffmpeg(ws, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_FFMPEG", "/nonexistent/ffmpeg")
    assert run_cli("generate", "-w", ws, "-g", "hevc:qp=30", "--no-progress") == 1
    assert (
        "hevc-qp30 needs ffmpeg with libx265, but '/nonexistent/ffmpeg' was not found"
        in capsys.readouterr().err
    )
    assert not (ws / "sets").exists()


def test_corrupt_store_part(ws, capsys):
    assert run_cli("run", "-w", ws, "-g", "jpeg-q10", "--metrics", "psnr", "--no-progress") == 0
    part = next((ws / "results").glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:100])
    assert run_cli("report", "-w", ws) == 1
    assert f"{part}: unreadable result-store part" in capsys.readouterr().err
