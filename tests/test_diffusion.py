"""Schedules, preconditioning and samplers: conformance over the registry and the math."""

from __future__ import annotations

import math

import pytest
import torch

from audiodiff import registry
from audiodiff.diffusion.samplers import ancestral_step
from audiodiff.diffusion.schedules import CosineSchedule, LinearSchedule, sigma_to_alpha_bar
from audiodiff.errors import ConfigError


# -- schedules ---------------------------------------------------------------------------------
def test_linear_schedule_is_ddpm():
    s = LinearSchedule()
    betas = s.betas()
    assert len(betas) == 1000
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    a = s.alphas_cumprod
    assert torch.allclose(s.sigmas.double(), ((1 - a) / a).sqrt(), rtol=1e-5)
    assert s.sigma_max > 150 and s.sigma_min < 0.011


def test_cosine_schedule_alpha_bar():
    s = CosineSchedule()
    T, off = 1000, 0.008
    t = torch.tensor([0, 499, 998], dtype=torch.float64)
    f = lambda u: torch.cos((u / T + off) / (1 + off) * math.pi / 2) ** 2  # noqa: E731
    expected = f(t + 1) / f(torch.zeros(1, dtype=torch.float64))
    assert torch.allclose(s.alphas_cumprod[t.long()], expected, rtol=1e-6)
    assert s.betas().max() <= 0.999


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_sigma_t_round_trip(name):
    s = registry.build("schedule", name)
    t = torch.tensor([0.0, 1.0, 10.5, 500.25, 999.0])
    assert torch.allclose(s.sigma_to_t(s.t_to_sigma(t)), t, atol=1e-3)
    assert torch.allclose(s.c_noise(s.sigmas[[3, 700]]), torch.tensor([3.0, 700.0]), atol=1e-3)


def test_timestep_spacings_match_the_papers():
    s = LinearSchedule()
    assert s.timesteps(10, "leading").tolist() == list(range(900, -1, -100))
    assert s.timesteps(10, "trailing").tolist() == list(range(999, 98, -100))
    assert s.timesteps(10, "linspace").tolist() == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    for spacing in ("leading", "trailing", "linspace"):
        for steps in (1, 7, 1000):
            t = s.timesteps(steps, spacing)
            assert len(t) == steps and (t >= 0).all() and (t <= 999).all()
            assert (t[:-1] > t[1:]).all()
            sig = s.inference_sigmas(steps, spacing)
            assert sig[-1] == 0 and len(sig) == steps + 1
    with pytest.raises(ValueError, match="between 1 and"):
        s.timesteps(0)
    with pytest.raises(ValueError, match="between 1 and"):
        s.timesteps(1001)
    with pytest.raises(ValueError, match="spacing"):
        s.timesteps(10, "middle")


# -- preconditioning ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", registry.names("preconditioning"))
def test_preconditioning_target_recovers_x0(name):
    p = registry.build("preconditioning", name)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    sigma = torch.tensor([0.01, 0.5, 3.0, 150.0])
    x = x0 + sigma[:, None, None] * noise
    target = p.target(x0, noise, sigma)
    assert torch.allclose(p.denoised(x, sigma, target), x0, atol=1e-4, rtol=1e-4)
    assert torch.allclose(p.loss(target, x0, noise, sigma), torch.zeros(4), atol=1e-8)


def test_eps_and_v_targets():
    sigma = torch.tensor([0.3, 2.0])
    x0, noise = torch.randn(2, 6), torch.randn(2, 6)
    eps = registry.build("preconditioning", "eps")
    assert torch.allclose(eps.target(x0, noise, sigma), noise, atol=1e-6)
    alpha, s = (1 + sigma**2).rsqrt()[:, None], (sigma / (1 + sigma**2).sqrt())[:, None]
    v = registry.build("preconditioning", "v")
    assert torch.allclose(v.target(x0, noise, sigma), alpha * noise - s * x0, atol=1e-5)
    # the net of a VP model sees x_t = sqrt(a) x0 + sqrt(1 - a) eps
    a = sigma_to_alpha_bar(sigma)[:, None]
    x = x0 + sigma[:, None] * noise
    assert torch.allclose(eps.net_input(x, sigma), a.sqrt() * x0 + (1 - a).sqrt() * noise, atol=1e-5)


def test_min_snr_weight_for_eps():
    p = registry.build("preconditioning", {"name": "eps", "weighting": "min_snr", "min_snr_gamma": 5.0})
    sigma = torch.tensor([0.1, 1.0, 10.0])
    snr = sigma.pow(-2)
    assert torch.allclose(p.weight(sigma), torch.minimum(snr, torch.tensor(5.0)) / snr)
    with pytest.raises(ConfigError, match="weighting"):
        registry.build("preconditioning", {"name": "eps", "weighting": "mystery"})


# -- samplers -------------------------------------------------------------------------------
def gaussian_denoiser(s: float):
    """The exact denoiser of data N(0, s^2): E[x0 | x] = x s^2 / (s^2 + sigma^2)."""

    def denoise(x, sigma):
        sigma = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        return x * s**2 / (s**2 + sigma**2)

    return denoise


def sample_std(sampler_name: str | dict, steps: int, s: float = 0.5, n: int = 20480, spacing: str = "trailing") -> float:
    """Std of ``n`` numbers sampled as 320 examples of 64 dimensions (like a few mel frames)."""
    schedule = LinearSchedule()
    sigmas = schedule.inference_sigmas(steps, spacing).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n // 64, 64, generator=g, dtype=torch.float64) * schedule.prior_scale(float(sigmas[0]))
    sampler = registry.build("sampler", sampler_name)
    out = sampler(gaussian_denoiser(s), x, sigmas, generator=g)
    return out.std().item()


@pytest.mark.parametrize("name", registry.names("sampler"))
def test_sampler_conformance(name):
    sampler = registry.build("sampler", name)
    sigmas = LinearSchedule().inference_sigmas(6)
    x = torch.randn(3, 2, 5) * sigmas[0]
    calls = []
    out1 = sampler(gaussian_denoiser(1.0), x.clone(), sigmas, torch.Generator().manual_seed(0), calls.append)
    out2 = sampler(gaussian_denoiser(1.0), x.clone(), sigmas, torch.Generator().manual_seed(0))
    assert out1.shape == x.shape and torch.isfinite(out1).all()
    assert torch.equal(out1, out2), "same generator must give the same result"
    assert [c["i"] for c in calls] == list(range(6))
    assert set(calls[0]) >= {"i", "sigma", "sigma_next", "x", "denoised"}


@pytest.mark.parametrize("name", registry.names("sampler"))
def test_sampler_reproduces_gaussian_std(name):
    """Every sampler reaches std s on N(0, s^2) data, with an error that shrinks as steps grow."""
    s = 0.5
    errors = {steps: abs(sample_std(name, steps, s) - s) for steps in (5, 25, 200)}
    assert errors[200] < 0.02, errors
    assert errors[200] <= errors[5] + 0.005, errors
    assert errors[25] < 0.1, errors


def test_second_order_samplers_converge_faster_than_ddim():
    """2nd-order methods need far fewer steps than DDIM for the same error (even per denoiser call)."""
    s = 0.5
    ddim_40 = abs(sample_std("ddim", 40, s) - s)
    for name in ("heun", "dpmpp_2m"):
        assert abs(sample_std(name, 40, s) - s) < ddim_40 / 3, name
        assert abs(sample_std(name, 20, s) - s) < ddim_40, name


def test_ddpm_reaches_std_with_full_ladder():
    for variance in ("posterior", "beta"):
        sampler = registry.build("sampler", {"name": "ddpm", "variance": variance})
        schedule = LinearSchedule()
        sigmas = schedule.inference_sigmas(1000).double()
        g = torch.Generator().manual_seed(2)
        x = torch.randn(20000, 1, generator=g, dtype=torch.float64) * schedule.prior_scale(float(sigmas[0]))
        assert sampler(gaussian_denoiser(0.5), x, sigmas, g).std().item() == pytest.approx(0.5, abs=0.015)


def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """An arbitrary smooth 'network' predicting eps from DDPM's x_t and timestep."""
    return torch.tanh(0.7 * x_t + 0.001 * t.reshape(-1, *([1] * (x_t.dim() - 1))))


def denoiser_from_eps(schedule):
    def denoise(x, sigma):
        a = sigma_to_alpha_bar(sigma).reshape(-1, *([1] * (x.dim() - 1)))
        eps = eps_fn(x * a.sqrt(), schedule.sigma_to_t(sigma).double())
        return x - sigma.reshape(a.shape) * eps

    return denoise


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_in_sigma_space_equals_literal_ddim(spacing):
    """Song et al. 2021, eq. 12 with eta = 0, step by step, to 1e-5."""
    schedule = LinearSchedule()
    steps = 20
    ts = schedule.timesteps(steps, spacing)
    a_bar = schedule.alphas_cumprod
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(4, 3, 8, generator=g, dtype=torch.float64)
    # literal DDIM in x_t space
    x_t, literal = x_T.clone(), []
    for i, t in enumerate(ts.tolist()):
        a_t = a_bar[t]
        a_prev = a_bar[ts[i + 1]] if i + 1 < steps else torch.tensor(1.0, dtype=torch.float64)
        eps = eps_fn(x_t, torch.full((4,), float(t), dtype=torch.float64))
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x_t = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        literal.append(x_t / a_prev.sqrt())  # in sigma space
    # ours in sigma space
    sigmas = torch.cat([((1 - a_bar[ts]) / a_bar[ts]).sqrt(), torch.zeros(1, dtype=torch.float64)])
    ours = []
    sampler = registry.build("sampler", "ddim")
    sampler(denoiser_from_eps(schedule), x_T / a_bar[ts[0]].sqrt(), sigmas, callback=lambda d: ours.append(d["x"]))
    for a, b in zip(literal, ours):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


class FixedNoise:
    def __init__(self, z):
        self.z = z

    def randn(self, shape, dtype):
        return self.z.to(dtype)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ancestral_step_equals_ddpm_posterior_step(variance):
    """One step t -> t-1: x_{t-1} = mu_tilde(x_t, x0) + std * z (Ho et al. 2020, eqs. 6-7)."""
    schedule = LinearSchedule()
    t = 600
    a_t, a_prev = schedule.alphas_cumprod[t], schedule.alphas_cumprod[t - 1]
    beta = 1 - a_t / a_prev
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn(5, 7, generator=g, dtype=torch.float64)
    z = torch.randn(5, 7, generator=g, dtype=torch.float64)
    eps = eps_fn(x_t, torch.full((5,), float(t), dtype=torch.float64))
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    mu = a_prev.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t) * x_t
    beta_tilde = (1 - a_prev) / (1 - a_t) * beta
    std = beta_tilde.sqrt() if variance == "posterior" else beta.sqrt()
    expected = (mu + std * z) / a_prev.sqrt()  # x_{t-1} in sigma space
    sigmas = torch.stack([((1 - a_t) / a_t).sqrt(), ((1 - a_prev) / a_prev).sqrt()])
    names = ["ddpm"] + (["euler_ancestral"] if variance == "posterior" else [])
    for name in names:
        sampler = registry.build("sampler", {"name": name, "variance": variance} if name == "ddpm" else name)
        got = sampler(denoiser_from_eps(schedule), x_t / a_t.sqrt(), sigmas, generator=FixedNoise(z))
        assert torch.allclose(got, expected, atol=1e-6, rtol=1e-6), name


def test_ancestral_step_limits():
    sigma, sigma_next = torch.tensor(2.0), torch.tensor(1.0)
    down, up = ancestral_step(sigma, sigma_next, 0.0)
    assert up == 0 and down == sigma_next
    down, up = ancestral_step(sigma, sigma_next, 1.0)
    assert torch.allclose(down**2 + up**2, sigma_next**2)


def test_sampler_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="eta"):
        registry.build("sampler", {"name": "ddim", "eta": 2.0})
    with pytest.raises(ConfigError, match="variance"):
        registry.build("sampler", {"name": "ddpm", "variance": "huge"})
