"""``bench qf``: the quality factor read back from the quantisation tables of files written by
libjpeg-turbo (an encoder independent of carbench's table formula)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from carbench.degradations.jpeg import ijg_quant_tables, qf_from_quant_tables, read_quant_tables
from conftest import run_cli


def _jpeg(img: np.ndarray, **opts) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **opts)
    return buf.getvalue()


@pytest.mark.parametrize("qf", [1, 5, 10, 23, 37, 50, 64, 75, 90, 99, 100])
def test_libjpeg_files_give_their_qf_back(coffee, camera, qf):
    for img in (coffee[:64, :64], camera[:64, :64]):
        assert qf_from_quant_tables(read_quant_tables(_jpeg(img, quality=qf))) == (qf, True)


def test_foreign_tables_give_the_nearest_qf(coffee):
    luma, chroma = ijg_quant_tables(30)
    luma = luma.copy()
    luma[7, 7] += 3  # one entry off: not IJG any more, but nearest to 30
    data = _jpeg(coffee[:64, :64], qtables=[luma.ravel().tolist(), chroma.ravel().tolist()])
    assert qf_from_quant_tables(read_quant_tables(data)) == (30, False)


def test_cli(tmp_path, coffee, capsys):
    (tmp_path / "a.jpg").write_bytes(_jpeg(coffee, quality=12))
    Image.fromarray(coffee).save(tmp_path / "b.png")
    assert run_cli("qf", tmp_path) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:2] == ["a.jpg", "12"] and "IJG tables" in out[1]
    assert out[2].split()[:2] == ["b.png", "-"] and "not a JPEG file" in out[2]
    assert run_cli("qf", tmp_path / "a.jpg", "--method", "dncnn3") == 1
    assert "method 'dncnn3' has no QF head (use fbcnn or codiff)" in capsys.readouterr().err


def test_cli_predictor_without_weights(tmp_path, coffee, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    (tmp_path / "a.jpg").write_bytes(_jpeg(coffee, quality=12))
    assert run_cli("qf", tmp_path / "a.jpg", "--method", "fbcnn") == 1
    err = capsys.readouterr().err
    assert "fbcnn_color.pth: get https://github.com/jiaxi-jiang/FBCNN/releases" in err
