"""A codec whose library is missing fails in ``check_available`` (before any work) with an error
naming the package to install."""

from __future__ import annotations

import builtins

import pytest

from carbench.degradations import avif, heif, jpegxl


def test_avif_without_pillow_avif(monkeypatch):
    from PIL import features

    avif.libavif_version.cache_clear()
    monkeypatch.setattr(features, "check", lambda name: False)
    with pytest.raises(RuntimeError, match="pip install -U pillow"):
        avif.Avif(50).check_available()
    avif.libavif_version.cache_clear()


@pytest.mark.parametrize(
    "module, deg, package",
    [
        ("imagecodecs", lambda: jpegxl.JpegXl("d", 1.0), "pip install imagecodecs"),
        ("pillow_heif", lambda: heif.Heif(30), "pip install pillow-heif"),
    ],
)
def test_missing_python_package(monkeypatch, module, deg, package):
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == module:
            raise ImportError(name)
        return real(name, *a, **k)

    jpegxl.libjxl_version.cache_clear()
    heif.libheif_version.cache_clear()
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(RuntimeError, match=package):
        deg().check_available()
    monkeypatch.undo()
    jpegxl.libjxl_version.cache_clear()
    heif.libheif_version.cache_clear()


def test_generate_refuses_before_work(monkeypatch, tmp_path):
    from carbench.degradations.chain import Chain

    jpegxl.libjxl_version.cache_clear()
    monkeypatch.setattr(jpegxl, "_codecs", lambda: (_ for _ in ()).throw(RuntimeError("no jxl")))
    with pytest.raises(RuntimeError, match="no jxl"):
        Chain.parse("resize=0.5,jxl=2").check_available()
    jpegxl.libjxl_version.cache_clear()
