"""Record the state-dict layout of upstream SwinIR's JPEG-CAR networks (tests/test_swinir.py).

Usage: python tests/reference/swinir_keys_upstream.py /path/to/SwinIR-checkout [out.json]
(environment ``cnn`` of tests/reference/rebuild.py: torch 2.14.1 CPU, timm 1.0.31).

Upstream: JingyunLiang/SwinIR @6545850fbf8df298df73d81f3e8cba638787c8bd,
``models/network_swinir.py`` ``SwinIR`` with the arguments ``main_test_swinir.py`` gives the
tasks ``jpeg_car`` (``in_chans=1``) and ``color_jpeg_car`` (``in_chans=3``): upscale 1, img_size
126, window 7, img_range 255, depths and heads ``[6] * 6``, embed 180, mlp_ratio 2, no
upsampler, ``1conv``. Built on CPU (its ``__init__`` calls ``.item()``, so not on the meta
device). Writes ``{"source", "constructor", "shapes": {"gray": {name: shape}, "color": ...}}``
in the module's own key order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "6545850fbf8df298df73d81f3e8cba638787c8bd"
CONSTRUCTOR = (
    "SwinIR(upscale=1, in_chans=1|3, img_size=126, window_size=7, img_range=255., "
    'depths=[6]*6, embed_dim=180, num_heads=[6]*6, mlp_ratio=2, upsampler="", '
    'resi_connection="1conv"), built on CPU (its __init__ calls .item(), so not on the meta '
    "device)"
)


def main(upstream: Path, out: Path) -> None:
    sys.path.insert(0, str(upstream))
    from models.network_swinir import SwinIR

    shapes = {}
    for kind, chans in (("gray", 1), ("color", 3)):
        net = SwinIR(
            upscale=1,
            in_chans=chans,
            img_size=126,
            window_size=7,
            img_range=255.0,
            depths=[6] * 6,
            embed_dim=180,
            num_heads=[6] * 6,
            mlp_ratio=2,
            upsampler="",
            resi_connection="1conv",
        )
        shapes[kind] = {k: list(v.shape) for k, v in net.state_dict().items()}
    doc = {
        "source": f"JingyunLiang/SwinIR:models/network_swinir.py@{COMMIT}",
        "constructor": CONSTRUCTOR,
        "shapes": shapes,
    }
    out.write_text(json.dumps(doc, indent=0) + "\n")
    print(out, {k: len(v) for k, v in shapes.items()})


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/data/swinir_car_keys.json",
    )
