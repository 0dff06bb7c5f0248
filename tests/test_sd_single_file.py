"""Original single-file (LDM) Stable Diffusion checkpoints -> diffusers UNet/VAE + CLIP text.

The LDM-layout files are written by a second, independent mapping in this test (diffusers name
-> CompVis name, hand-derived from the LDM module tree). Round trips on tiny configs must give
back every tensor bit for bit and the same forward output; the full-size SD-2.1-base key sets
built from the manifests must convert to exactly the manifests' keys and shapes.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from carbench.core.errors import BenchError
from carbench.methods.sd import model as sd_model
from carbench.methods.sd import single_file as sd_single_file
from tests.test_diffusion import TINY_UNET, TINY_VAE

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET[head]}.{tail}"


def unet_to_ldm(key: str, cfg: dict) -> str:
    """diffusers UNet2DConditionModel key -> ``model.diffusion_model.`` key."""
    n = cfg["layers_per_block"]
    attn_down = [t.startswith("CrossAttn") for t in cfg["down_block_types"]]
    attn_up = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    fixed = {
        "conv_in.": "input_blocks.0.0.",
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
    }
    for a, b in fixed.items():
        if key.startswith(a):
            return "model.diffusion_model." + b + key[len(a) :]
    if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        i, j = int(m[1]), int(m[2])
        ldm = f"input_blocks.{1 + i * (n + 1) + j}.0.{_resnet(m[3])}"
    elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
        ldm = f"input_blocks.{1 + int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
    elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        ldm = f"input_blocks.{(int(m[1]) + 1) * (n + 1)}.0.op.{m[2]}"
    elif m := re.match(r"mid_block\.resnets\.(\d)\.(.*)", key):
        ldm = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        ldm = f"middle_block.1.{m[1]}"
    elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        ldm = f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.0.{_resnet(m[3])}"
    elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
        ldm = f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
    elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        i = int(m[1])
        ldm = f"output_blocks.{i * (n + 1) + n}.{2 if attn_up[i] else 1}.conv.{m[2]}"
    else:
        raise KeyError(key)
    assert attn_down  # both lists are read so a config without attention is rejected above
    return "model.diffusion_model." + ldm


_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(key: str, value: torch.Tensor, cfg: dict) -> tuple[str, torch.Tensor]:
    """diffusers AutoencoderKL key -> ``first_stage_model.`` key (attention as 1x1 convs)."""
    levels = len(cfg["block_out_channels"])
    k = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    k = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", k)
    if "mid_block.attentions.0." in k:
        head, _, rest = k.partition("mid_block.attentions.0.")
        for a, b in _VAE_ATTN.items():
            if rest.startswith(a + "."):
                rest = b + rest[len(a) :]
        k = head + "mid.attn_1." + rest
        if value.ndim == 2:
            value = value[:, :, None, None]
    k = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", k)
    k = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", k)
    k = re.sub(
        r"decoder\.up_blocks\.(\d+)\.resnets\.",
        lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.",
        k,
    )
    k = re.sub(
        r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
        lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.",
        k,
    )
    return "first_stage_model." + k, value


def text_to_openclip(sd: dict) -> dict:
    """transformers CLIPTextModel state dict -> ``cond_stage_model.model.`` (OpenCLIP)."""
    p = "cond_stage_model.model."
    sd = {("" if k.startswith("text_model.") else "text_model.") + k: v for k, v in sd.items()}
    out = {
        p + "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        p + "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        p + "ln_final.weight": sd["text_model.final_layer_norm.weight"],
        p + "ln_final.bias": sd["text_model.final_layer_norm.bias"],
    }
    names = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    layers = {int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers.")}
    for i in sorted(layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"{p}transformer.resblocks.{i}."
        for a, b in names.items():
            for t in ("weight", "bias"):
                out[f"{dst}{b}.{t}"] = sd[f"{src}{a}.{t}"]
        for t in ("weight", "bias"):
            qkv = [sd[f"{src}self_attn.{x}_proj.{t}"] for x in "qkv"]
            out[f"{dst}attn.in_proj_{t}"] = torch.cat(qkv, 0)
    return out


def _ldm_file(unet, vae, text, tmp_path, cfg_unet, cfg_vae) -> tuple:
    g = torch.Generator().manual_seed(3)
    sd = {unet_to_ldm(k, cfg_unet): v for k, v in unet.state_dict().items()}
    sd.update(dict(vae_to_ldm(k, v, cfg_vae) for k, v in vae.state_dict().items()))
    sd.update(text_to_openclip(text.state_dict()))
    # what the real file has beyond the three parts: the last OpenCLIP block (unused by SD-2),
    # the contrastive head, and the DDPM tables
    width = text.config.hidden_size
    n = text.config.num_hidden_layers
    sd[f"cond_stage_model.model.transformer.resblocks.{n}.ln_1.weight"] = torch.randn(width)
    sd["cond_stage_model.model.text_projection"] = torch.randn(width, width, generator=g)
    sd["cond_stage_model.model.logit_scale"] = torch.tensor(4.6)
    sd["betas"] = torch.linspace(0.00085, 0.012, 1000)
    path = tmp_path / "tiny-sd.ckpt"
    torch.save({"state_dict": sd, "global_step": 1}, path)
    return path, sd


TINY_TEXT = dict(sd_single_file.TEXT_CONFIG, hidden_size=64, intermediate_size=128)
TINY_TEXT.update(num_hidden_layers=2, num_attention_heads=4, projection_dim=32)


def test_tiny_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    unet, vae = sd_model.build_unet(TINY_UNET), sd_model.build_vae(TINY_VAE)
    text = sd_single_file.build_text_encoder(TINY_TEXT)
    path, ldm = _ldm_file(unet, vae, text, tmp_path, TINY_UNET, TINY_VAE)
    assert sd_single_file.unused_keys(ldm) == []
    got = sd_single_file.load_single_file(
        path,
        ("unet", "vae", "text_encoder", "tokenizer"),
        unet_config=TINY_UNET,
        vae_config=TINY_VAE,
        text_config=TINY_TEXT,
    )
    for name, ref in (("unet", unet), ("vae", vae), ("text_encoder", text)):
        mine = got[name].state_dict()
        assert list(mine) == list(ref.state_dict()), name
        for k, v in ref.state_dict().items():
            assert torch.equal(mine[k], v), f"{name}: {k}"
    x = torch.randn(1, 4, 16, 16)
    ctx = torch.randn(1, 5, 1024)
    with torch.no_grad():
        a = unet(x, 10, encoder_hidden_states=ctx).sample
        b = got["unet"](x, 10, encoder_hidden_states=ctx).sample
        ids = got["tokenizer"]("a photo of a cat")
        t_ref, t_got = text.eval()(ids)[0], got["text_encoder"](ids)[0]
    assert torch.equal(a, b)
    assert torch.equal(t_ref, t_got)


def test_openclip_tokenizer_ids():
    """<sot>=49406, 'a</w>'=320, 'photo</w>'=1125, <eot>=49407, zero padding to 77 (the ids of
    the CLIP BPE vocabulary, as in the CLIP paper's released tokenizer)."""
    ids = sd_single_file.OpenClipTokenizer()(["A photo"])
    assert ids.shape == (1, 77)
    assert ids[0, :5].tolist() == [49406, 320, 1125, 49407, 0]
    assert int(ids.count_nonzero()) == 4


def test_full_size_keys_match_the_manifests(manifests):
    """The SD-2.1-base key sets, written in the LDM layout on the meta device, convert to
    exactly the manifest keys and shapes."""
    man_unet = json.loads((manifests / "sd21-base-unet.json").read_text())
    man_vae = json.loads((manifests / "sd21-base-vae.json").read_text())
    with torch.device("meta"):
        unet_sd = {k: torch.empty(s) for k, s in man_unet["shapes"].items()}
        vae_sd = {k: torch.empty(s) for k, s in man_vae["shapes"].items()}
    ldm = {unet_to_ldm(k, sd_model.UNET_CONFIG): v for k, v in unet_sd.items()}
    ldm.update(dict(vae_to_ldm(k, v, sd_model.VAE_CONFIG) for k, v in vae_sd.items()))
    assert len(ldm) == len(unet_sd) + len(vae_sd)  # the mapping is one-to-one
    unet = sd_single_file.convert_unet(ldm, sd_model.UNET_CONFIG)
    vae = sd_single_file.convert_vae(ldm, sd_model.VAE_CONFIG)
    assert {k: list(v.shape) for k, v in unet.items()} == man_unet["shapes"]
    assert {k: list(v.shape) for k, v in vae.items()} == man_vae["shapes"]
    with torch.device("meta"):
        text = sd_single_file.build_text_encoder()
    clip = text_to_openclip({k: v for k, v in text.state_dict().items()})
    conv = sd_single_file.convert_text_encoder(clip, sd_single_file.TEXT_CONFIG)
    conv = sd_single_file._match_text_prefix(conv, text)
    assert {k: v.shape for k, v in conv.items()} == {
        k: v.shape for k, v in text.state_dict().items()
    }


def test_not_a_single_file_checkpoint(tmp_path):
    p = tmp_path / "v2.pth"
    torch.save({"input_blocks.0.0.weight": torch.zeros(1)}, p)
    with pytest.raises(BenchError) as e:
        sd_single_file.read_checkpoint(p)
    assert str(e.value) == (
        f"{p}: not an original single-file Stable Diffusion checkpoint "
        "(no 'model.diffusion_model.*' keys)"
    )


class _Callback:  # stands for the training objects some .ckpt files carry
    pass


def test_pickled_objects_are_refused(tmp_path):
    p = tmp_path / "sd.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(1)}, "cb": _Callback()}, p)
    with pytest.raises(BenchError, match="holds Python objects besides tensors"):
        sd_single_file.read_checkpoint(p)


def test_missing_part_is_a_strict_error(tmp_path):
    torch.manual_seed(0)
    unet, vae = sd_model.build_unet(TINY_UNET), sd_model.build_vae(TINY_VAE)
    text = sd_single_file.build_text_encoder(TINY_TEXT)
    path, ldm = _ldm_file(unet, vae, text, tmp_path, TINY_UNET, TINY_VAE)
    del ldm["model.diffusion_model.out.2.weight"]
    torch.save({"state_dict": ldm}, path)
    with pytest.raises(
        BenchError, match=r"\(unet\): not the expected checkpoint layout: 1 missing"
    ):
        sd_single_file.load_single_file(path, ("unet",), unet_config=TINY_UNET)
