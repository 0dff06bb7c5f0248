"""DiffBIR's networks (methods/nets/): official state-dict layouts, buffers, and CPU
forward passes with random weights (shapes and structural properties, never quality)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from carbench.methods.nets.ircontrolnet import build_ircontrolnet
from carbench.methods.nets.scunet import build_scunet
from carbench.methods.nets.swinir_net import build_swinir

BUILDERS = {
    "diffbir-ircontrolnet.json": build_ircontrolnet,
    "diffbir-stage1-swinir.json": build_swinir,
    "diffbir-stage1-scunet.json": build_scunet,
}


@pytest.mark.parametrize("manifest", sorted(BUILDERS))
def test_network_matches_official_manifest(manifests, manifest):
    man = json.loads((manifests / manifest).read_text())
    with torch.device("meta"):  # no memory, no weights
        net = BUILDERS[manifest]()
    state = net.state_dict()
    shapes = {k: list(v.shape) for k, v in state.items()}
    assert shapes == man["shapes"]
    assert list(shapes) == list(man["shapes"])  # same order as the official state dict
    assert len(shapes) == man["state_dict_key_count"]
    assert sum(v.numel() for v in state.values()) == man["state_dict_numel"]
    assert sum(p.numel() for p in net.parameters()) == man["param_count"]
    assert sorted(k for k, _ in net.named_buffers()) == sorted(man["buffers"])
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in state.items()} == man["dtypes"]


def test_swinir_loads_its_own_state_dict_strictly():
    """What a checkpoint load does: meta build, materialise, strict load (buffers included)."""
    torch.manual_seed(0)
    ref = build_swinir()
    with torch.device("meta"):
        net = build_swinir()
    net = net.to_empty(device="cpu")
    net.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def _window_zero_counts(mask: torch.Tensor) -> list[int]:
    return sorted((mask == 0).sum(dim=(1, 2)).tolist())


def test_swinir_position_index_and_shift_masks():
    """Window 8, shift 4 on the stored 64x64 token grid (8x8 windows). Relative offsets span
    15x15 = 225 entries, the zero offset is entry 7*15+7 = 112 and opposite offsets sum to 224.
    Of the 64 shifted windows, 49 hold one region (64² allowed pairs), the 14 on the last row or
    column two regions of 32 tokens (2 * 32²) and the corner four regions of 16 (4 * 16²)."""
    net = build_swinir()
    blocks = [b for layer in net.layers for b in layer.residual_group.blocks]
    assert len(blocks) == 48
    index = blocks[0].attn.relative_position_index
    assert index.shape == (64, 64) and index.dtype == torch.int64
    assert index.min() == 0 and index.max() == 224 and len(index.unique()) == 225
    assert (index.diagonal() == 112).all()
    assert torch.equal(index + index.T, torch.full_like(index, 224))
    for i, block in enumerate(blocks):
        if i % 2 == 0:
            assert block.attn_mask is None
            continue
        mask = block.attn_mask
        assert mask.shape == (64, 64, 64)
        assert set(mask.unique().tolist()) == {-100.0, 0.0}
        assert _window_zero_counts(mask) == [1024] + [2048] * 14 + [4096] * 49


def test_swinir_forward_keeps_size():
    """Unshuffle x8 then three nearest x2 upsamplings: same size out as in; padding to the
    window size inside is cropped back; batch items are independent."""
    torch.manual_seed(0)
    net = build_swinir().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        # batch of 1 vs 2: other GEMM blocking, fp32: measured 6e-8 (values < 0.5)
        assert torch.allclose(net(x[1:]), out[1:], rtol=0, atol=2e-7)
        odd = net(torch.rand(1, 3, 60, 124))  # reflect-padded to 64x128 inside
        assert odd.shape == (1, 3, 60, 124) and torch.isfinite(odd).all()
        with pytest.raises(ValueError, match="multiple of 64"):
            net(torch.rand(1, 3, 72, 64))  # 9x8 tokens do not tile into 8x8 windows


def test_scunet_forward_keeps_size():
    """Replicate padding to a multiple of 64 inside, cropped back; batch items independent."""
    torch.manual_seed(0)
    net = build_scunet().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()
        # batch of 1 vs 2: other GEMM blocking, fp32: measured 5.7e-7 (values < 1)
        assert torch.allclose(net(x[:1]), out[:1], rtol=0, atol=1.5e-6)
        odd = net(torch.rand(1, 3, 50, 70))
        assert odd.shape == (1, 3, 50, 70) and torch.isfinite(odd).all()


@pytest.fixture(scope="module")
def controlnet():
    torch.manual_seed(0)
    return build_ircontrolnet().eval()


def _control_inputs(batch: int = 1, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=g)
    hint = torch.randn(batch, 4, 8, 8, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    context = torch.randn(batch, 77, 1024, generator=g)
    return x, hint, t, context


def test_controlnet_returns_13_zero_residuals(manifests, controlnet):
    """One residual per input block and one for the middle block, with the zero convs' widths;
    three downsamplings take 8x8 to 1x1. Upstream zero-initialises every zero conv, so a freshly
    built ControlNet adds nothing to the UNet."""
    shapes = json.loads((manifests / "diffbir-ircontrolnet.json").read_text())["shapes"]
    widths = [shapes[f"zero_convs.{i}.0.weight"][0] for i in range(12)]
    widths.append(shapes["middle_block_out.0.weight"][0])
    assert controlnet.output_channels == widths
    with torch.no_grad():
        outs = controlnet(*_control_inputs())
    assert len(outs) == 13
    sides = [8, 8, 8, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1]
    assert [tuple(o.shape) for o in outs] == [
        (1, c, s, s) for c, s in zip(widths, sides, strict=True)
    ]
    assert all(o.dtype == torch.float32 and not o.any() for o in outs)


def _zero_initialised(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers upstream zero-initialises besides the zero convs."""
    layers = []
    for name, module in net.named_modules():
        if name.endswith(("out_layers.3", ".proj_out")):
            layers.append(module)
    return layers


def test_controlnet_hint_concat_and_conditioning(controlnet):
    """With identity zero convs the first residual is the first conv applied to the latent and
    the hint stacked in that order. While the residual blocks' last convs and the transformers'
    output projections are zero (upstream's init), timestep and text cannot matter; once they
    are random, both do, and batch items stay independent."""
    net = controlnet
    convs = [seq[0] for seq in [*net.zero_convs, net.middle_block_out]]
    zero_layers = _zero_initialised(net)
    assert len(zero_layers) == 10 + 7  # residual blocks and transformers, middle included
    x, hint, t, context = _control_inputs(batch=2)
    try:
        with torch.no_grad():
            for conv in convs:
                eye = torch.eye(conv.in_channels)[:, :, None, None]
                conv.weight.copy_(eye)
                conv.bias.zero_()
            outs = net(x, hint, t, context)
            first = net.input_blocks[0][0]
            expected = F.conv2d(torch.cat((x, hint), 1), first.weight, first.bias, padding=1)
            # the same convolution: measured 0.0; 2e-6 = 4 fp32 steps at the largest value (3.5)
            assert torch.allclose(outs[0], expected, rtol=0, atol=2e-6)
            other = net(x, hint, t + 500, torch.randn_like(context))
            assert all(torch.equal(a, b) for a, b in zip(outs, other, strict=True))

            gen = torch.Generator().manual_seed(2)
            for layer in zero_layers:
                for p in layer.parameters():
                    p.normal_(0.0, 0.02, generator=gen)
            outs = net(x, hint, t, context)
            assert all(torch.isfinite(o).all() for o in outs)
            new_t = net(x, hint, t + 500, context)
            new_text = net(x, hint, t, torch.randn_like(context))
            for i in (1, 12):  # first residual block onwards, and the middle block
                assert not torch.allclose(outs[i], new_t[i])
                assert not torch.allclose(outs[i], new_text[i])
            single = net(x[1:], hint[1:], t[1:], context[1:])
            # batch of 1 vs 2 through the UNet, fp32: measured 1.5e-5 (values to 5.8)
            assert all(
                torch.allclose(a, b[1:], rtol=0, atol=4e-5)
                for a, b in zip(single, outs, strict=True)
            )
    finally:  # leave the shared fixture as built
        with torch.no_grad():
            for layer in [*convs, *zero_layers]:
                for p in layer.parameters():
                    p.zero_()
