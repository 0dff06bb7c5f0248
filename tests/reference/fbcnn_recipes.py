"""Record FBCNN's and CODiff's training pairs with every random draw they make.

Usage: python tests/reference/fbcnn_recipes.py /path/to/FBCNN /path/to/CODiff [out.npz]
(FBCNN jiaxi-jiang/FBCNN @54d1831, CODiff jp-guo/CODiff @86e2f04; an environment with torch,
torchvision, OpenCV and matplotlib). Runs upstream's own ``DatasetJPEG.__getitem__`` (phase
``train``) of ``data/dataset_jpeg.py``, ``dataset_jpeggray.py``, ``dataset_jpeggraydouble.py``
(FBCNN) and ``data/dataset_jpeg.py`` (CODiff) on one image, with the dataset module's ``random``
replaced by a seeded ``random.Random`` that logs each call (name, arguments, result). Stores the
L/H patches (uint8) and the call logs; carbench replays a log into its recipe and must give the
same patches. Nothing from carbench is used here.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

PATCH = 32  # H_size (upstream trains 96 / 256; any size runs the same code)
ROWS, COLS = (100, 160), (180, 250)  # 60x70 crop of skimage's astronaut
CASES = {  # case: (checkout index, module, items, first seed)
    "color": (0, "data.dataset_jpeg", 8, 100),
    "gray": (0, "data.dataset_jpeggray", 8, 200),
    "double": (0, "data.dataset_jpeggraydouble", 16, 300),
    "codiff": (1, "data.dataset_jpeg", 6, 400),
}


class LoggedRandom:
    """The three ``random`` functions the datasets call, logged."""

    def __init__(self, seed: int) -> None:
        self.r, self.log = random.Random(seed), []

    def randint(self, a: int, b: int) -> int:
        v = self.r.randint(a, b)
        self.log.append(["randint", [a, b], v])
        return v

    def choice(self, seq):
        v = self.r.choice(seq)
        self.log.append(["choice", list(seq), v])
        return v

    def random(self) -> float:
        v = self.r.random()
        self.log.append(["random", [], v])
        return v


def to_uint8(t) -> np.ndarray:
    """KAIR uint2tensor3 (CHW float /255) back to HxW[xC] uint8."""
    a = np.round(t.numpy() * 255.0).astype(np.uint8).transpose(1, 2, 0)
    return a[..., 0] if a.shape[2] == 1 else a


def load_module(checkout: str, name: str):
    import importlib

    for mod in [m for m in sys.modules if m.split(".")[0] in ("data", "utils")]:
        del sys.modules[mod]
    sys.path.insert(0, checkout)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(checkout)


def main(checkouts: list[str], out: str) -> None:
    import cv2
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[ROWS[0] : ROWS[1], COLS[0] : COLS[1]])
    folder = Path(tempfile.mkdtemp())
    cv2.imwrite(str(folder / "a.png"), img[..., ::-1])
    arrays: dict[str, np.ndarray] = {"image": img}
    for case, (which, name, items, seed0) in CASES.items():
        mod = load_module(checkouts[which], name)
        root = [str(folder)] if which == 1 else str(folder)
        opt = {"n_channels": 3, "H_size": PATCH, "dataroot_H": root, "phase": "train"}
        opt["dataloader_batch_size"] = 128  # train_fbcnn_graydouble.json
        lqs, gts, logs = [], [], []
        for i in range(items):
            mod.random = LoggedRandom(seed0 + i)
            ds = mod.DatasetJPEG(opt)  # fresh: the double coin is drawn at its first item
            item = ds[0]
            lqs.append(to_uint8(item["L"]))
            gts.append(to_uint8(item["H"]))
            logs.append(mod.random.log)
        arrays[f"{case}_L"], arrays[f"{case}_H"] = np.stack(lqs), np.stack(gts)
        arrays[f"{case}_log"] = np.array(json.dumps(logs))
        if case == "double":  # one dataset object (one DataLoader worker's copy), 300 items
            mod.random = LoggedRandom(seed0)
            ds = mod.DatasetJPEG(opt)
            for _ in range(300):
                ds[0]
            coins = [e for e in mod.random.log if e[0] == "choice" and e[1] == [False, True]]
            arrays["double_coins_in_300_items"] = np.array(len(coins))
    arrays["versions"] = np.array(json.dumps({"opencv": cv2.__version__}))
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[1] / "data" / "upstream" / "fbcnn_recipes.npz"
    main(sys.argv[1:3], sys.argv[3] if len(sys.argv) > 3 else str(here))
