"""The reverse variance: analytic (Bao et al. 2022) and learned (Nichol & Dhariwal 2021), on Gaussian
data where the true reverse variance is known, and a learned-variance model end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from audiodiff import registry
from audiodiff.diffusion.schedules import CosineSchedule, LinearSchedule
from audiodiff.diffusion.variance import (EpsSquareTable, analytic_variance, beta_variance, gaussian_kl,
                                          hybrid_vlb_term, learned_log_variance, posterior_variance,
                                          variance_fraction)
from audiodiff.errors import ConfigError
from audiodiff.likelihood import bits_per_dim_vlb, decoder_nll, kl_weights, reverse_kl
from audiodiff.model import DiffusionModel
from audiodiff.variance import estimate_eps_sq, with_analytic_variance

from conftest import tiny_config
from test_likelihood import GaussianModel, gaussian_data


def true_reverse_variance(s2: float, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """``Var(x_sigma_next | x_sigma)`` for data ``N(0, s2)`` in sigma space (a Gaussian conditional)."""
    return (s2 + sigma_next**2) * (sigma**2 - sigma_next**2) / (s2 + sigma**2)


def gaussian_gamma(s2: float, sigma: torch.Tensor) -> torch.Tensor:
    """``E ||E[eps | x]||^2 / d = sigma^2 / (s2 + sigma^2)`` for data ``N(0, s2)``."""
    return sigma**2 / (s2 + sigma**2)


# -- the formulas --------------------------------------------------------------------------------
@pytest.mark.parametrize("s2", [0.01, 0.25, 1.0, 4.0])
def test_analytic_variance_is_the_true_reverse_variance_of_gaussian_data(s2):
    sigma = torch.tensor([0.05, 0.3, 1.0, 5.0, 40.0], dtype=torch.float64)
    for ratio in (0.2, 0.7, 0.99):
        sigma_next = sigma * ratio
        got = analytic_variance(sigma, sigma_next, gaussian_gamma(s2, sigma))
        assert torch.allclose(got, true_reverse_variance(s2, sigma, sigma_next), rtol=1e-10)


def test_the_true_reverse_variance_lies_between_beta_tilde_and_beta_for_unit_data_at_beta():
    sigma = torch.logspace(-2, 2, 20, dtype=torch.float64)
    sigma_next = sigma * 0.8
    true = true_reverse_variance(1.0, sigma, sigma_next)
    assert torch.allclose(true, beta_variance(sigma, sigma_next))  # unit-variance data: beta is exact
    assert (posterior_variance(sigma, sigma_next) <= true).all()


def test_the_variance_fraction_is_bounded_and_interpolates_in_log():
    raw = torch.tensor([-1e4, -30.0, 0.0, 30.0, 1e4])
    v = variance_fraction(raw)
    assert (v >= 0).all() and (v <= 1).all() and v[2] == 0.5
    sigma, sigma_next = torch.tensor(0.4), torch.tensor(0.3)
    log_var = learned_log_variance(v, sigma, sigma_next)
    lo, hi = posterior_variance(sigma, sigma_next).log(), beta_variance(sigma, sigma_next).log()
    assert (log_var >= lo - 1e-6).all() and (log_var <= hi + 1e-6).all()
    assert torch.allclose(log_var[[0, -1]], torch.stack([lo, hi]))


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(4))
    p = torch.distributions.Normal(m1, (0.5 * lv1).exp())
    q = torch.distributions.Normal(m2, (0.5 * lv2).exp())
    assert torch.allclose(gaussian_kl(m1, lv1, m2, lv2), torch.distributions.kl_divergence(p, q))


def test_the_eps_square_table_interpolates_in_log_sigma_and_rejects_bad_tables():
    table = EpsSquareTable.from_pairs([[0.1, 0.0], [10.0, 1.0]])
    got = table(torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0]))
    assert torch.allclose(got, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    for bad in ([[1.0, 0.5]], [[1.0, 0.5], [0.5, 0.2]], [[1.0, -0.1], [2.0, 0.1]], [[0.0, 0.1], [1.0, 0.2]],
                [["a", 1], [2, 3]], [[1.0, float("nan")], [2.0, 0.1]]):
        with pytest.raises(ValueError):
            EpsSquareTable.from_pairs(bad)


# -- the sampler ---------------------------------------------------------------------------------
def ddpm_std(variance: str, steps: int, s: float, **kw) -> float:
    """Std of DDPM samples of ``N(0, s^2)`` data on a ladder that ends at the schedule's lowest level."""
    schedule = LinearSchedule()
    sigmas = schedule.inference_sigmas(steps, "linspace").double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(320, 64, generator=g, dtype=torch.float64) * schedule.prior_scale(float(sigmas[0]))
    model = GaussianModel(s, schedule)
    sampler = registry.build("sampler", {"name": "ddpm", "variance": variance, **kw})
    return sampler(model.denoise, x, sigmas, generator=g).std().item()


def test_analytic_ddpm_samples_gaussian_data_exactly_in_few_steps_where_the_fixed_variances_do_not():
    s = 0.5
    schedule = LinearSchedule()
    model = GaussianModel(s, schedule)
    x0 = gaussian_data(1024, s=s).float()
    table, clips = estimate_eps_sq(model, [(x0, {})], levels=48, generator=torch.Generator().manual_seed(2))
    assert clips == 1024
    sig = torch.tensor(table.sigmas)
    assert torch.allclose(torch.tensor(table.values), gaussian_gamma(s**2, sig), atol=0.03)
    analytic = ddpm_std("analytic", 5, s, eps_sq=table.pairs())
    assert analytic == pytest.approx(s, rel=0.04)
    # 5 steps with beta_tilde are far too narrow; with the exact Gamma the analytic step is exact
    assert abs(ddpm_std("posterior", 5, s) - s) > 3 * abs(analytic - s)


def test_analytic_ddpm_without_a_table_is_an_error():
    sampler = registry.build("sampler", {"name": "ddpm", "variance": "analytic"})
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="eps_sq"):
        sampler(lambda x, s: x * 0, x, torch.tensor([2.0, 1.0, 0.0]))


def test_learned_ddpm_needs_a_learned_variance_denoiser():
    sampler = registry.build("sampler", {"name": "ddpm", "variance": "learned"})
    with pytest.raises(ValueError, match="learned variance"):
        sampler(lambda x, s: x * 0, torch.randn(2, 4), torch.tensor([2.0, 1.0, 0.0]))


# -- the VLB terms -------------------------------------------------------------------------------
def test_the_general_kl_term_with_beta_tilde_is_the_closed_form():
    schedule = LinearSchedule()
    model = GaussianModel(0.5, schedule)
    x0 = gaussian_data(8)
    denoise = lambda x, sigma: model.denoise(x, x.new_full((x.shape[0],), float(sigma)))  # noqa: E731
    k = 37
    sigma, sigma_next = float(schedule.sigmas[k]), float(schedule.sigmas[k - 1])
    general = reverse_kl(denoise, x0, sigma, sigma_next, "posterior", None, torch.Generator().manual_seed(5))
    x = x0 + sigma * torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=x0.dtype)
    closed = float(kl_weights(schedule)[k]) * ((x0 - denoise(x, sigma)) ** 2).flatten(1).sum(1)
    assert torch.allclose(general, closed, rtol=1e-6)


def test_the_analytic_vlb_beats_beta_tilde_and_the_decoder_matches_a_direct_computation():
    s = 0.5
    schedule = CosineSchedule()
    model = GaussianModel(s, schedule)
    x0 = gaussian_data(64, s=s)
    table = EpsSquareTable(tuple(torch.logspace(-3, 4.4, 60).tolist()),
                           tuple(gaussian_gamma(s**2, torch.logspace(-3, 4.4, 60, dtype=torch.float64)).tolist()))
    bpd = {v: bits_per_dim_vlb(model, x0, steps=200, generator=torch.Generator().manual_seed(0), bin_width=None,
                               variance=v, eps_sq=table if v == "analytic" else None).mean().item()
           for v in ("posterior", "beta", "analytic")}
    assert bpd["analytic"] < bpd["posterior"] and bpd["analytic"] < bpd["beta"]
    # the decoder: -log N(x0; D(x_1), sigma_1^2 (1 - Gamma)) computed directly
    denoise = lambda x, sigma: model.denoise(x, x.new_full((x.shape[0],), float(sigma)))  # noqa: E731
    nll = decoder_nll(denoise, x0, schedule, torch.Generator().manual_seed(3), None, "analytic", table)
    s1 = float(schedule.sigmas[0])
    x1 = x0 + s1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=x0.dtype)
    var = s1**2 * (1 - float(table(torch.tensor(s1))))
    var = min(max(var, float(posterior_variance(schedule.sigmas[1].double(), schedule.sigmas[0].double())
                              / (1 + s1**2))), float(beta_variance(torch.tensor(s1), torch.tensor(0.0))))
    direct = -torch.distributions.Normal(denoise(x1, s1), math.sqrt(var)).log_prob(x0).flatten(1).sum(1)
    assert torch.allclose(nll, direct, rtol=1e-4)


# -- a learned-variance model --------------------------------------------------------------------
def test_a_learned_variance_model_moves_toward_the_true_reverse_variance(tmp_path):
    torch.manual_seed(0)
    model = DiffusionModel(tiny_config(variance="learned", schedule={"name": "cosine", "num_steps": 100}))
    assert model.net.out_channels == 2 * model.net.in_channels
    schedule = model.schedule
    g = torch.Generator().manual_seed(0)
    sigma = schedule.sigmas[[10, 30, 60]].repeat_interleave(32)  # (96,)
    sigma_next = schedule.sigmas[[9, 29, 59]].repeat_interleave(32)

    def log_variance_error() -> float:
        x0 = torch.randn(96, 32, 8, generator=torch.Generator().manual_seed(9))
        x = x0 + sigma[:, None, None] * torch.randn(x0.shape, generator=torch.Generator().manual_seed(8))
        with torch.no_grad():
            _, v = model.denoise_with_variance(x, sigma)
        s, sn = sigma[:, None, None], sigma_next[:, None, None]
        return (learned_log_variance(v, s, sn) - true_reverse_variance(1.0, s, sn).log()).abs().mean().item()

    before = log_variance_error()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = model.loss(torch.randn(32, 32, 8, generator=g), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert log_variance_error() < 0.7 * before
    # saved, loaded and sampled with its own variance
    model.save(tmp_path / "m")
    loaded = DiffusionModel.from_folder(tmp_path / "m")
    assert loaded.learns_variance and loaded.config["variance"] == "learned"
    from audiodiff.generate import generate

    clips = generate(loaded, seconds=0.2, steps=3, sampler={"name": "ddpm", "variance": "learned"}, seed=0, num_samples=2)
    assert len(clips) == 2 and all(torch.isfinite(torch.as_tensor(c.waveform)).all() for c in clips)
    bpd = bits_per_dim_vlb(loaded, torch.randn(2, 32, 8), steps=8, generator=g, variance="learned")
    assert torch.isfinite(bpd).all()


def test_the_vlb_term_trains_only_the_variance():
    model = DiffusionModel(tiny_config(variance="learned", schedule={"name": "cosine", "num_steps": 100}))
    x0 = torch.randn(4, 32, 8)
    sigma = model.schedule.sigmas[[5, 20, 50, 90]]
    x = x0 + sigma[:, None, None] * torch.randn_like(x0)
    mean_out = torch.zeros_like(x0, requires_grad=True)
    raw = torch.zeros_like(x0, requires_grad=True)
    denoised = model.preconditioning.denoised(x, sigma, mean_out.detach())
    hybrid_vlb_term(model.schedule, x0, x, sigma, denoised, variance_fraction(raw)).backward()
    assert mean_out.grad is None and raw.grad.abs().sum() > 0


def test_models_without_learned_variance_are_unchanged_and_bad_settings_are_errors():
    plain = DiffusionModel(tiny_config())
    assert not plain.learns_variance and "variance" not in plain.config
    assert plain.net.out_channels == plain.net.in_channels
    with pytest.raises(ConfigError, match="fixed reverse variance"):
        plain.denoise_with_variance(torch.randn(1, 32, 8), torch.ones(1))
    with pytest.raises(ConfigError, match="variance"):
        DiffusionModel(tiny_config(variance="sometimes"))


def test_the_analytic_table_is_stored_with_the_model_and_used_by_generate(tmp_path):
    from audiodiff.generate import generate

    model = DiffusionModel(tiny_config())
    with pytest.raises(ConfigError, match="audiodiff variance"):
        generate(model, seconds=0.2, steps=3, sampler={"name": "ddpm", "variance": "analytic"}, seed=0)
    x0 = torch.randn(8, 32, 8)
    table, clips = estimate_eps_sq(model, [(x0, {})], levels=8)
    with_analytic_variance(model, table, "data", clips).save(tmp_path / "m")
    loaded = DiffusionModel.from_folder(tmp_path / "m")
    assert loaded.config["analytic_variance"]["clips"] == 8
    clips = generate(loaded, seconds=0.2, steps=3, sampler={"name": "ddpm", "variance": "analytic"}, seed=0)
    assert clips[0].metadata["sampler"]["variance"] == "analytic"


def test_variance_and_likelihood_cli_end_to_end(tmp_path, capsys):
    import soundfile as sf

    from audiodiff.cli import main
    from audiodiff.data import ManifestItem, write_manifest
    from train_helpers import ToneDataset

    DiffusionModel(tiny_config()).save(tmp_path / "model")
    data, items = ToneDataset(6), []
    for i in range(6):
        path = tmp_path / f"{i}.wav"
        sf.write(path, data[i]["waveform"][0].numpy(), 8000)
        items.append(ManifestItem(path=str(path), duration=0.25, sample_rate=8000, split="train"))
    write_manifest(items, tmp_path / "clips.jsonl")
    args = ["variance", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "clips.jsonl"), "--clips", "4",
            "--levels", "6", "--out", str(tmp_path / "analytic")]
    assert main(args) == 0
    assert "from 4 clips" in capsys.readouterr().out
    assert main(args) == 2  # no silent overwrite
    stats = json.loads((tmp_path / "analytic" / "config.json").read_text())["analytic_variance"]
    assert len(stats["eps_sq"]) == 6 and stats["clips"] == 4
    lik = ["likelihood", str(tmp_path / "0.wav"), "--model", str(tmp_path / "analytic"), "--steps", "4",
           "--variance", "analytic", "--json", str(tmp_path / "lik.json")]
    assert main(lik) == 0
    assert json.loads((tmp_path / "lik.json").read_text())[0]["variance"] == "analytic"
    lik[3] = str(tmp_path / "model")  # no table: a one-line error
    assert main(lik + ["--overwrite"]) == 2
    assert "audiodiff variance" in capsys.readouterr().err.splitlines()[-1]
    assert main(["generate", "--model", str(tmp_path / "analytic"), "--sampler", "ddpm", "--sampler-arg",
                 "variance=analytic", "--out", str(tmp_path / "gen"), "--quiet"]) == 0
