"""Bad input: every class of broken image gets a message naming the file and the problem."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carbench.core.errors import DiskFullError, ImageError
from carbench.core.imageio import list_images, read_image, write_bytes_atomic


def _save(path: Path, img: Image.Image, fmt: str = "PNG", **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


@pytest.fixture
def rgb_png(tmp_path, coffee) -> Path:
    return _save(tmp_path / "good.png", Image.fromarray(coffee))


def test_good_rgb_and_gray(tmp_path, coffee, camera, rgb_png):
    assert np.array_equal(read_image(rgb_png).pixels, coffee)
    gray = _save(tmp_path / "g.png", Image.fromarray(camera))
    assert np.array_equal(read_image(gray).pixels, camera)


def test_odd_and_minimum_sizes_are_fine(tmp_path, coffee):
    for h, w in [(9, 11), (8, 8), (13, 401)]:
        p = _save(tmp_path / f"{h}x{w}.png", Image.fromarray(coffee[:h, :w]))
        assert read_image(p).pixels.shape == (h, w, 3)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (9, 7), (7, 9)])
def test_too_small(tmp_path, coffee, h, w):
    p = _save(tmp_path / "tiny.png", Image.fromarray(coffee[:h, :w]))
    with pytest.raises(
        ImageError, match=rf"tiny.png: image is {w}x{h} pixels; carbench needs at least 8x8"
    ):
        read_image(p)


def test_truncated_png(tmp_path, rgb_png):
    p = tmp_path / "trunc.png"
    p.write_bytes(rgb_png.read_bytes()[:5000])
    with pytest.raises(ImageError, match=r"trunc.png: corrupt or truncated image"):
        read_image(p)


def test_truncated_and_corrupt_jpeg(tmp_path, coffee):
    buf = io.BytesIO()
    Image.fromarray(coffee).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match=r"t.jpg: corrupt or truncated image"):
        read_image(tmp_path / "t.jpg")
    bad = bytearray(data)
    bad[2:40] = b"\x00" * 38  # destroy the headers after SOI
    (tmp_path / "c.jpg").write_bytes(bytes(bad))
    with pytest.raises(ImageError, match=r"c.jpg: corrupt (or truncated )?image"):
        read_image(tmp_path / "c.jpg")


def test_zero_bytes_and_not_an_image(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.png: empty file \(0 bytes\)"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("this is text, not a picture\n" * 10)
    with pytest.raises(ImageError, match=r"notes.png: not an image file Pillow can read"):
        read_image(tmp_path / "notes.png")


def test_wrong_extension_is_read_by_content(tmp_path, coffee):
    p = _save(tmp_path / "really_png.jpg", Image.fromarray(coffee), "PNG")
    assert np.array_equal(read_image(p).pixels, coffee)


def test_16_bit_gray_and_rgb(tmp_path):
    p = _save(tmp_path / "deep.png", Image.fromarray(np.full((16, 16), 4000, np.uint16)))
    with pytest.raises(ImageError, match=r"deep.png: 16-bit samples"):
        read_image(p)
    # 48-bit RGB PNG written by OpenCV (Pillow cannot write it)
    import cv2

    rgb16 = np.full((16, 16, 3), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "deep_rgb.png"), rgb16)
    with pytest.raises(ImageError, match=r"deep_rgb.png: 16-bit samples"):
        read_image(tmp_path / "deep_rgb.png")


def test_alpha(tmp_path, coffee):
    rgba = np.dstack([coffee, np.full(coffee.shape[:2], 255, np.uint8)])
    opaque = _save(tmp_path / "opaque.png", Image.fromarray(rgba))
    loaded = read_image(opaque)
    assert np.array_equal(loaded.pixels, coffee) and "alpha" in loaded.note
    rgba[0, 0, 3] = 10
    p = _save(tmp_path / "transparent.png", Image.fromarray(rgba))
    with pytest.raises(ImageError, match=r"transparent.png: has an alpha channel with transparent"):
        read_image(p)


def test_palette_is_expanded_losslessly(tmp_path, coffee):
    pal = Image.fromarray(coffee).quantize(64)
    p = _save(tmp_path / "pal.png", pal)
    loaded = read_image(p)
    assert np.array_equal(loaded.pixels, np.asarray(pal.convert("RGB")))
    assert loaded.note == "palette expanded to RGB"


def test_cmyk(tmp_path, coffee):
    p = _save(tmp_path / "print.jpg", Image.fromarray(coffee).convert("CMYK"), "JPEG")
    with pytest.raises(ImageError, match=r"print.jpg: CMYK image"):
        read_image(p)


def test_directory_and_missing(tmp_path):
    with pytest.raises(ImageError, match=r"is a directory"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match=r"missing.png: file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match=r"folder not found"):
        list_images(tmp_path / "nope")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out" / "a.bin"
    write_bytes_atomic(target, b"x" * 100)
    assert target.read_bytes() == b"x" * 100
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode().strip())
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_names_the_file_and_keeps_earlier_files(tiny_disk):
    first = tiny_disk / "first.bin"
    write_bytes_atomic(first, b"a" * 600_000)
    with pytest.raises(DiskFullError, match=r"second.bin: disk full while writing"):
        write_bytes_atomic(tiny_disk / "second.bin", os.urandom(600_000))
    assert first.read_bytes() == b"a" * 600_000
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["first.bin"]


def test_temp_files_of_killed_writers_are_swept(tmp_path):
    """A writer SIGKILLed between create and rename leaves `.NAME.HOST-PID.X.tmp`; the next
    write into that folder removes it, but never a live process's or another host's."""
    import socket
    import sys

    from carbench.core import imageio

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    host = imageio._HOST
    stale = tmp_path / f".a.png.{host}-{dead_pid}.abc123.tmp"
    live = tmp_path / f".b.png.{host}-{os.getppid()}.def456.tmp"
    other = tmp_path / f".c.png.otherhost-{dead_pid}.ghi789.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    assert socket.gethostname()  # the host part is derived from it
    imageio._SWEPT.discard(tmp_path)
    write_bytes_atomic(tmp_path / "d.png", b"new")
    assert (tmp_path / "d.png").read_bytes() == b"new"
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == sorted(
        [live.name, other.name]
    )


def test_atomic_write_into_a_folder_removed_since(tmp_path):
    """Folders are made once per process; one deleted in between is made again."""
    import shutil

    folder = tmp_path / "set" / "jpeg-q10"
    write_bytes_atomic(folder / "a.jpg", b"one")
    shutil.rmtree(tmp_path / "set")
    write_bytes_atomic(folder / "b.jpg", b"two")
    assert (folder / "b.jpg").read_bytes() == b"two" and not (folder / "a.jpg").exists()
