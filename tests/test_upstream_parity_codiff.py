"""carbench's CODiff pipeline against upstream's CODiff_test run on the same stand-in weights
(tests/data/upstream/codiff.npz; README.md there names repository, commit, command, versions).

Both sides fill networks with the official parameter names by ``fill_standin``: upstream its own
UNet/VAE copies (diffusers 0.25.0) with LoRA added by its ``initialize_unet`` / ``initialize_vae``
and saved by ``CODiff_train.save_model``; carbench diffusers 0.42 classes with the adapters of
``sd_core.make_lora_checkpoint`` loaded through ``sd_core.add_lora``. Precision fp16 (upstream's
default ``--mixed_precision``), CaVE and proj fp32, on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import methods
from methods import sd_core
from methods.base import Sample
from tests.reference import codiff_upstream as ref
from tests.reference.standin import fill_standin, layout_digest

DATA = Path(__file__).parent / "data" / "upstream"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rec() -> dict[str, np.ndarray]:
    with np.load(DATA / "codiff.npz") as z:
        return {k: z[k] for k in z.files}


def standin_parts(rank: int = ref.RANK):
    """(unet, vae, checkpoint dict, cave) filled as the reference script fills upstream's."""
    from methods.codiff import build_cave

    unet, vae = sd_core.build_unet(ref.UNET_CONFIG), sd_core.build_vae(ref.VAE_CONFIG)
    fill_standin(unet, ref.SEEDS["unet"], ref.GAINS["unet"])
    fill_standin(vae, ref.SEEDS["vae"], ref.GAINS["vae"])
    lora_unet, lora_vae = sd_core.build_unet(ref.UNET_CONFIG), sd_core.build_vae(ref.VAE_CONFIG)
    proj = torch.nn.Linear(512, 1024)
    ckpt = sd_core.make_lora_checkpoint(lora_unet, lora_vae, rank, proj.state_dict())
    # the checkpoint's tensors share storage with the modules, so filling them fills it
    fill_standin(lora_unet, ref.SEEDS["lora_unet"], ref.GAINS["lora_unet"])
    fill_standin(lora_vae, ref.SEEDS["lora_vae"], ref.GAINS["lora_vae"])
    fill_standin(proj, ref.SEEDS["proj"], ref.GAINS["proj"])
    cave = build_cave().eval()
    fill_standin(cave, ref.SEEDS["cave"], ref.GAINS["cave"])
    return unet, vae, ckpt, cave, (lora_unet, lora_vae)


@pytest.fixture(scope="module")
def parts(rec):
    unet, vae, ckpt, cave, (lora_unet, lora_vae) = standin_parts()
    assert layout_digest(lora_unet) == str(rec["unet_layout"])
    assert layout_digest(lora_vae) == str(rec["vae_layout"])
    assert layout_digest(cave) == str(rec["cave_layout"])
    return unet, vae, ckpt, cave


def build_codiff(parts, spec: str = "codiff"):
    """carbench's CODiff with the stand-ins loaded as ``CODiff.load`` does, in fp16."""
    unet, vae, ckpt, cave = (p for p in parts)
    import copy

    unet, vae = copy.deepcopy(unet), copy.deepcopy(vae)
    sd_core.add_lora(unet, vae, sd_core.LoraCheckpoint(ckpt), "stand-in")
    proj = torch.nn.Linear(512, 1024)
    proj.load_state_dict(ckpt["proj"])
    m = methods.get(spec)
    m.device, m.dtype, m.seed = "cpu", ref.DTYPE, ref.LATENT_SEED
    m.cave, m.proj = cave, proj.eval()
    m.set_components(unet.eval().half(), vae.eval().half(), None)
    return m


def run_stages(m, lq: np.ndarray, tiles: tuple[int, int]) -> dict[str, np.ndarray]:
    """Run ``m.restore`` on ``lq`` with latent tiles ``tiles`` and record every stage."""
    got: dict[str, list] = {"eps_tiles": []}

    def keep(key, value) -> None:  # a hook must return None to leave the output alone
        got.setdefault(key, value)

    hooks = [
        m.proj.register_forward_hook(lambda mod, a, o: keep("proj", o[0])),
        m.cave.m_body_encoder.register_forward_hook(
            lambda mod, a, o: keep("tokens", o.flatten(2).transpose(1, 2)[0])
        ),
        m.unet.register_forward_hook(lambda mod, a, o: got["eps_tiles"].append(o.sample)),
        m.vae.decoder.register_forward_hook(lambda mod, a, o: keep("decoded", o[0])),
    ]
    step = sd_core.one_step_x0
    restore_tensor = m.restore_tensor

    def spy_step(eps, z, t):
        got["eps"], got["latent"] = eps[0], z[0]
        got["x0"] = step(eps, z, t)
        return got["x0"]

    sd_core.one_step_x0 = spy_step
    m.restore_tensor = lambda x: restore_tensor(x, tiles=tiles)
    try:
        final = m.restore(Sample("crop", lq, Path("-"), "jpeg-q10", {"qf": 10}))
    finally:
        sd_core.one_step_x0 = step
        del m.restore_tensor
        for h in hooks:
            h.remove()
    got["x0"] = got["x0"][0]
    out = {k: v.float().numpy() for k, v in got.items() if k != "eps_tiles"}
    out["decoded"] = out["decoded"].clip(-1, 1)
    out["eps_tiles"] = torch.cat(got["eps_tiles"]).float().numpy()
    out["final"] = final
    return out


@pytest.fixture(scope="module")
def untiled(parts, rec):
    m = build_codiff(parts)
    return run_stages(m, rec["untiled_lq"], (96, 32)), m


def test_lora_module_lists_match_upstream(parts, rec):
    """carbench's target-module rule gives upstream's lists (initialize_unet/_vae) exactly."""
    want = json.loads(str(rec["modules"]))
    ckpt = parts[2]
    for key, modules in want.items():
        assert ckpt[key] == modules, key


def test_stages_report(untiled, rec):
    got, _ = untiled
    for k in ("tokens", "proj", "latent", "eps", "x0", "decoded"):
        d = np.abs(got[k] - rec[f"untiled_{k}"]).max()
        print(k, got[k].shape, rec[f"untiled_{k}"].shape, d, float(np.abs(rec[f"untiled_{k}"]).max()))
    d = np.abs(got["final"].astype(int) - rec["untiled_final"]).max()
    print("final", d, (got["final"] != rec["untiled_final"]).sum())
