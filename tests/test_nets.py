"""Tests for audiodiff.nets: shapes for any length, conditioning, masks, errors, gradients."""

from __future__ import annotations

import pytest
import torch

import audiodiff.nets  # noqa: F401  (registers the nets)
from audiodiff.nets import UNet, UNet1D, UNet2D
from audiodiff.registry import build

torch.set_num_threads(2)

NAMES = ["unet1d", "unet2d"]
SMALL = dict(channels=16, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1], num_heads=2, norm_groups=4)
N_MELS = 6  # deliberately not a multiple of the downsampling factor
COND_DIM, CONTEXT_DIM, TOKENS = 5, 12, 3


def make_net(name: str, **overrides) -> UNet:
    in_channels = N_MELS if name == "unet1d" else 1
    return build("net", {"name": name, **SMALL, **overrides}, in_channels=in_channels)


def make_x(net: UNet, batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, net.in_channels, frames) if net.dims == 1 else (batch, 1, N_MELS, frames)
    return torch.randn(shape, generator=gen)


def make_context(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    context = torch.randn(batch, TOKENS, CONTEXT_DIM, generator=gen)
    mask = torch.ones(batch, TOKENS, dtype=torch.bool)
    mask[0, 2:] = False
    return context, mask


@torch.no_grad()
def perturb(net: UNet, seed: int = 0) -> UNet:
    """Move every parameter off its (possibly zero) init so that every path carries signal."""
    gen = torch.Generator().manual_seed(seed)
    for param in net.parameters():
        param.add_(0.2 * torch.randn(param.shape, generator=gen))
    return net


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("frames", [1, 7, 31, 64])
def test_output_shape_any_length(name, frames):
    net = make_net(name)
    x = make_x(net, 2, frames)
    out = net(x, torch.tensor([3.0, 999.0]))
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output layer


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("frames", [1, 7, 31, 64])
def test_output_shape_with_cond_and_context(name, frames):
    net = perturb(make_net(name, cond_dim=COND_DIM, context_dim=CONTEXT_DIM, out_channels=2))
    x = make_x(net, 2, frames)
    context, mask = make_context(2)
    mask[1] = False  # a sample with no valid token
    out = net(x, torch.rand(2) * 1000, torch.randn(2, COND_DIM), context, mask)
    spatial = x.shape[2:]
    assert out.shape == (2, 2, *spatial)
    assert torch.isfinite(out).all()
    assert torch.isfinite(net(x, torch.rand(2), context=context)).all()  # no mask, no cond


@pytest.mark.parametrize("name", NAMES)
def test_build_from_registry(name):
    net = make_net(name)
    assert isinstance(net, {"unet1d": UNet1D, "unet2d": UNet2D}[name])
    assert net.dims == (1 if name == "unet1d" else 2)
    assert net.out_channels == net.in_channels


@pytest.mark.parametrize("name", NAMES)
def test_scalar_c_noise_broadcasts(name):
    net = perturb(make_net(name)).eval()
    x = make_x(net, 2, 8)
    torch.testing.assert_close(net(x, torch.tensor(7.0)), net(x, torch.tensor([7.0, 7.0])))


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_empty_mask_row_means_no_context(name):
    net = perturb(make_net(name, context_dim=CONTEXT_DIM)).eval()
    x = make_x(net, 2, 9)
    c_noise = torch.tensor([10.0, 500.0])
    context, mask = make_context(2)
    mask[1] = False
    out = net(x, c_noise, context=context, context_mask=mask)
    torch.testing.assert_close(out[1:], net(x[1:], c_noise[1:]))
    assert not torch.allclose(out[:1], net(x[:1], c_noise[:1]))  # the context does matter


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_masked_tokens_are_ignored(name):
    net = perturb(make_net(name, context_dim=CONTEXT_DIM)).eval()
    x = make_x(net, 2, 9)
    c_noise = torch.tensor([10.0, 500.0])
    context, mask = make_context(2)
    changed = context.clone()
    changed[0, 2:] = 100.0  # only tokens that are masked out
    out = net(x, c_noise, context=context, context_mask=mask)
    torch.testing.assert_close(out, net(x, c_noise, context=changed, context_mask=mask))


@pytest.mark.parametrize("name", NAMES)
def test_conditioning_errors(name):
    plain = make_net(name)
    with_cond = make_net(name, cond_dim=COND_DIM, context_dim=CONTEXT_DIM)
    x = make_x(plain, 2, 8)
    c_noise = torch.zeros(2)
    context, mask = make_context(2)
    with pytest.raises(ValueError, match="cond_dim=None"):
        plain(x, c_noise, cond=torch.zeros(2, COND_DIM))
    with pytest.raises(ValueError, match="context_dim=None"):
        plain(x, c_noise, context=context)
    with pytest.raises(ValueError, match="cond must have shape"):
        with_cond(x, c_noise, cond=torch.zeros(2, COND_DIM + 1))
    with pytest.raises(ValueError, match="context must have shape"):
        with_cond(x, c_noise, context=context[..., :-1])
    with pytest.raises(ValueError, match="context_mask"):
        with_cond(x, c_noise, context_mask=mask)
    with pytest.raises(ValueError, match="context_mask"):
        with_cond(x, c_noise, context=context, context_mask=mask.float())
    with pytest.raises(ValueError, match="c_noise"):
        plain(x, torch.zeros(3))
    with pytest.raises(ValueError, match="x must be"):
        plain(x[:, :, None] if plain.dims == 1 else x[:, 0], c_noise)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(channels=18), "divisible by norm_groups"),
        (dict(channel_mults=[]), "channel_mults must not be empty"),
        (dict(channel_mults=[1, 0]), "channel_mults"),
        (dict(attention_levels=[2]), "attention_levels"),
        (dict(num_heads=3), "num_heads"),
        (dict(dropout=1.0), "dropout"),
        (dict(cond_dim=0), "cond_dim"),
    ],
)
def test_invalid_config(overrides, message):
    for name in NAMES:
        with pytest.raises(ValueError, match=message):
            make_net(name, **overrides)


def test_base_class_needs_dims():
    with pytest.raises(TypeError, match="dims"):
        UNet(**SMALL)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    net = perturb(make_net(name, cond_dim=COND_DIM, context_dim=CONTEXT_DIM))
    x = make_x(net, 2, 7)
    context, mask = make_context(2)
    out = net(x, torch.tensor([1.0, 700.0]), torch.randn(2, COND_DIM), context, mask)
    out.square().mean().backward()
    for param_name, param in net.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_batch_consistency(name):
    net = perturb(make_net(name, cond_dim=COND_DIM, context_dim=CONTEXT_DIM)).eval()
    x = make_x(net, 3, 11)
    c_noise = torch.tensor([5.0, 250.0, 900.0])
    cond = torch.randn(3, COND_DIM)
    context, mask = make_context(3)
    batched = net(x, c_noise, cond, context, mask)
    for i in range(3):
        one = net(x[i : i + 1], c_noise[i : i + 1], cond[i : i + 1], context[i : i + 1], mask[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], one, rtol=1e-4, atol=1e-5)


def test_comparable_sizes_both_run():
    net1d = build("net", {"name": "unet1d", **SMALL, "channels": 32}, in_channels=N_MELS)
    net2d = build("net", {"name": "unet2d", **SMALL, "channels": 16}, in_channels=1)
    count1d = sum(p.numel() for p in net1d.parameters())
    count2d = sum(p.numel() for p in net2d.parameters())
    assert 0.5 < count1d / count2d < 5.0
    assert net1d(make_x(net1d, 1, 13), torch.ones(1)).shape == (1, N_MELS, 13)
    assert net2d(make_x(net2d, 1, 13), torch.ones(1)).shape == (1, 1, N_MELS, 13)
