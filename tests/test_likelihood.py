"""Bits per dimension: the VLB and the probability-flow ODE against exact Gaussian likelihoods."""

from __future__ import annotations

import json
import math

import pytest
import torch

from audiodiff.audio import save_audio
from audiodiff.diffusion.schedules import CosineSchedule, LinearSchedule
from audiodiff.errors import ConfigError
from audiodiff.likelihood import (DEFAULT_BIN_WIDTH, bits_per_dim_ode, bits_per_dim_vlb, flow, format_table,
                                  hutchinson_probes, kl_weights, likelihood_of_files, log_bin_mass, vlb_timesteps)

S = 0.5


class GaussianModel:
    """A 'model' of N(0, s^2) data whose denoiser is exact: D(x, sigma) = x s^2 / (s^2 + sigma^2)."""

    def __init__(self, s: float = S, schedule=None):
        self.s = s
        self.schedule = schedule or LinearSchedule()

    def denoise(self, x, sigma, **net_kwargs):
        sigma = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        return x * self.s**2 / (self.s**2 + sigma**2)


def gaussian_data(batch: int, s: float = S, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 2, 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * s


def true_bits_per_dim(x0: torch.Tensor, s: float = S, bin_width: float | None = DEFAULT_BIN_WIDTH) -> torch.Tensor:
    """``(B,)`` exact -log2 p(x0) / D under N(0, s^2), minus log2(bin_width) per dim."""
    nats = (0.5 * (x0 / s) ** 2 + math.log(s) + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    bits = nats / (x0[0].numel() * math.log(2))
    return bits if bin_width is None else bits - math.log2(bin_width)


def expected_vlb_bits(x0: torch.Tensor, schedule, s: float = S) -> torch.Tensor:
    """``(B,)`` E_eps[VLB] in closed form for the exact Gaussian denoiser (continuous decoder)."""
    a = schedule.alphas_cumprod
    sigma2 = (1 - a) / a
    c = s**2 / (s**2 + sigma2)  # (T,) denoiser gain
    sq = x0.flatten(1) ** 2  # (B, D)
    # E (x0 - c (x0 + sigma eps))^2 = (1 - c)^2 x0^2 + c^2 sigma^2, per schedule index
    err = (1 - c)[None, None] ** 2 * sq[..., None] + (c**2 * sigma2)[None, None]  # (B, D, T)
    kl = (kl_weights(schedule)[None, None] * err).sum(-1)
    beta1 = 1 - float(a[0])
    decoder = 0.5 * math.log(2 * math.pi * beta1) + err[..., 0] / (2 * beta1)
    prior = 0.5 * (float(a[-1]) * (sq - 1) - math.log1p(-float(a[-1])))
    return (kl + decoder + prior).sum(1) / (x0[0].numel() * math.log(2))


# -- the ODE ------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule()])
def test_ode_matches_the_gaussian_nll(schedule):
    model = GaussianModel(schedule=schedule)
    x0 = gaussian_data(16)
    ode = bits_per_dim_ode(model, x0, generator=torch.Generator().manual_seed(1))
    true = true_bits_per_dim(x0)
    assert ode.shape == (16,)
    assert (ode - true).abs().max() < 0.03, (ode - true)
    assert abs(ode.mean().item() - true.mean().item()) < 0.015
    # the continuous part (about 1 bit/dim) alone is also within 2 %
    cont = bits_per_dim_ode(model, x0, bin_width=None)
    assert cont.mean().item() == pytest.approx(true_bits_per_dim(x0, bin_width=None).mean().item(), rel=0.02)


def test_ode_error_falls_with_steps():
    model, x0 = GaussianModel(), gaussian_data(8)
    true = true_bits_per_dim(x0).mean().item()
    errors = [abs(bits_per_dim_ode(model, x0, steps=n).mean().item() - true) for n in (8, 16, 32)]
    assert errors[0] > errors[1] > errors[2], errors


def test_hutchinson_divergence():
    """Rademacher probes give a diagonal Jacobian's trace exactly; Gaussian ones on average."""
    model, x = GaussianModel(), gaussian_data(4)
    sigma = 0.7
    denoise = lambda x, sigma: model.denoise(x, x.new_full((x.shape[0],), sigma))  # noqa: E731
    exact = x[0].numel() * (1 - S**2 / (S**2 + sigma**2))
    g = torch.Generator().manual_seed(2)
    d, div = flow(denoise, x, sigma, hutchinson_probes(x, 1, "rademacher", g))
    assert torch.allclose(d, (x - denoise(x, sigma)) / sigma)
    assert torch.allclose(div, torch.full((4,), exact, dtype=torch.float64))
    _, div = flow(denoise, x, sigma, hutchinson_probes(x, 2000, "gaussian", g))
    assert torch.allclose(div, torch.full((4,), exact, dtype=torch.float64), rtol=0.01)
    ode = bits_per_dim_ode(model, x, steps=4, hutchinson_samples=2, probe="gaussian", generator=g)
    assert torch.isfinite(ode).all()


# -- the VLB ------------------------------------------------------------------------------------
def test_vlb_matches_its_closed_form():
    """Every term (prior, the T - 1 KLs, the decoder) against E_eps of the bound, in closed form."""
    schedule = LinearSchedule()
    x0 = gaussian_data(512)  # 16k dims: the eps noise of the batch mean is ~0.01 bits
    vlb = bits_per_dim_vlb(GaussianModel(), x0, generator=torch.Generator().manual_seed(3), bin_width=None)
    assert vlb.mean().item() == pytest.approx(expected_vlb_bits(x0, schedule).mean().item(), abs=0.04)


def test_vlb_is_an_upper_bound_on_the_nll():
    model, x0 = GaussianModel(), gaussian_data(64)
    vlb = bits_per_dim_vlb(model, x0, generator=torch.Generator().manual_seed(4))
    ode = bits_per_dim_ode(model, x0)
    true = true_bits_per_dim(x0)
    assert vlb.mean() >= true.mean() - 0.01 and vlb.mean() >= ode.mean() - 0.01
    # fixed posterior variances make the discrete-time bound loose (~0.6 bits/dim here), not absurd
    assert vlb.mean() - true.mean() < 1.0


def test_subsampled_vlb_is_unbiased():
    schedule = LinearSchedule()
    f = torch.rand(schedule.num_steps - 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    estimates = []
    for _ in range(2000):
        ks, w = vlb_timesteps(schedule, 16, g)
        assert len(ks) == 16 and ks.min() >= 1 and ks.max() <= schedule.num_steps - 1
        estimates.append((w * f[ks - 1]).sum())
    assert torch.stack(estimates).mean().item() == pytest.approx(f.sum().item(), rel=0.01)
    ks, w = vlb_timesteps(schedule, None, g)
    assert ks.tolist() == list(range(1, schedule.num_steps)) and (w == 1).all()


def test_subsampled_vlb_agrees_with_the_full_sum():
    model, x0 = GaussianModel(), gaussian_data(64)
    runs = torch.stack([bits_per_dim_vlb(model, x0, steps=32, generator=torch.Generator().manual_seed(i)).mean()
                        for i in range(10)])
    expected = expected_vlb_bits(x0, model.schedule).mean().item() - math.log2(DEFAULT_BIN_WIDTH)
    assert runs.mean().item() == pytest.approx(expected, abs=0.06)


@pytest.mark.parametrize("mean", [0.0, 0.3, -5.0, 40.0])
def test_log_bin_mass(mean):
    x = torch.tensor([0.0, 0.1, -0.2], dtype=torch.float64)
    mean_t = torch.full_like(x, mean)
    got = log_bin_mass(x, mean_t, 0.1, 0.05)
    normal = torch.distributions.Normal(mean_t, 0.1)
    direct = (normal.cdf(x + 0.025) - normal.cdf(x - 0.025)).log()
    finite = torch.isfinite(direct)
    assert torch.isfinite(got).all()
    assert torch.allclose(got[finite], direct[finite], rtol=1e-6)


# -- model comparisons --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["vlb", "ode"])
def test_data_from_the_model_scores_better_than_wider_data(method):
    model = GaussianModel()
    own, wide = gaussian_data(32, S, seed=7), gaussian_data(32, 2 * S, seed=8)
    score = (lambda x: bits_per_dim_vlb(model, x, steps=64, generator=torch.Generator().manual_seed(0))) \
        if method == "vlb" else (lambda x: bits_per_dim_ode(model, x, steps=16))
    # E[-log2 N(x; 0, s^2)] grows by (4 - 1) / (2 ln 2) = 2.16 bits/dim for data of std 2s
    assert score(wide).mean() > score(own).mean() + 1.5


def test_bad_arguments_are_config_errors(tiny_model, tmp_path):
    x0 = gaussian_data(2)
    with pytest.raises(ConfigError, match="bin_width"):
        bits_per_dim_vlb(GaussianModel(), x0, bin_width=0.0)
    with pytest.raises(ConfigError, match="probe"):
        bits_per_dim_ode(GaussianModel(), x0, probe="sobol")
    with pytest.raises(ConfigError, match="method"):
        likelihood_of_files(tiny_model, [], method="elbo")
    with pytest.raises(ConfigError, match="unconditional"):
        likelihood_of_files(tiny_model, [write_tone(tmp_path / "a.wav", 8000, 0.1)], prompt="a dog")


# -- audio files ----------------------------------------------------------------------------------
def write_tone(path, sample_rate: int, seconds: float, freq: float = 440.0):
    t = torch.arange(int(sample_rate * seconds)) / sample_rate
    return save_audio(path, (0.3 * torch.sin(2 * math.pi * freq * t))[None], sample_rate)


@pytest.mark.parametrize("method, steps", [("vlb", 4), ("ode", 2)])
def test_likelihood_of_files(tiny_model, tmp_path, method, steps):
    short = write_tone(tmp_path / "short.wav", 8000, 0.1)  # padded to the model's 0.25 s window
    long = write_tone(tmp_path / "long.wav", 16000, 1.0, 220.0)  # resampled and cropped
    results = likelihood_of_files(tiny_model, [short, long], method=method, steps=steps, batch_size=1)
    assert [r["path"] for r in results] == [str(short), str(long)]
    for r in results:
        assert math.isfinite(r["bits_per_dim"]) and r["method"] == method and r["steps"] == steps
        assert r["window"] == tiny_model.seconds and r["dims"] == 32 * tiny_model.representation.frames_for(0.25)
    assert [round(r["seconds"], 3) for r in results] == [0.1, 1.0]
    again = likelihood_of_files(tiny_model, [short, long], method=method, steps=steps, batch_size=1)
    assert again == results  # seeded
    json.dumps(results)
    table = format_table(results)
    assert "bits/dim" in table and str(long) in table


def test_likelihood_cli(tmp_path, capsys):
    import json as _json

    import soundfile as sf

    from audiodiff import DiffusionModel
    from audiodiff.cli import main
    from conftest import tiny_config

    folder = DiffusionModel(tiny_config()).save(tmp_path / "m")
    clip = tmp_path / "a.wav"
    sf.write(str(clip), (0.1 * torch.randn(2000)).numpy(), 8000)
    out = tmp_path / "lik.json"
    assert main(["likelihood", "--model", str(folder), str(clip), "--steps", "4", "--json", str(out)]) == 0
    results = _json.loads(out.read_text())
    assert len(results) == 1 and results[0]["bits_per_dim"] > 0
    assert main(["likelihood", "--model", str(folder), str(tmp_path / "none.wav"), "--json", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
