"""The SDE-flavoured samplers (dpmpp_2m_sde, sde, langevin) and the Karras / exponential noise ladders.

Every registered sampler also gets the conformance and Gaussian-std checks of test_diffusion.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from audiodiff import registry
from audiodiff.diffusion.schedules import (SPACINGS, CosineSchedule, LinearSchedule, exponential_sigmas,
                                           karras_sigmas)
from audiodiff.errors import ConfigError
from test_diffusion import gaussian_denoiser, sample_std


# -- ladders ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ladder", [karras_sigmas, exponential_sigmas])
@pytest.mark.parametrize("steps", [1, 2, 10, 1500])
def test_ladders_descend_from_sigma_max_to_zero(ladder, steps):
    sigmas = ladder(steps, 0.02, 80.0)
    assert sigmas.shape == (steps + 1,) and sigmas.dtype == torch.float32
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-1] == 0
    assert (sigmas[:-1] > sigmas[1:]).all()
    if steps > 1:
        assert sigmas[-2].item() == pytest.approx(0.02)


def test_karras_rho_1_is_linear_and_exponential_is_log_linear():
    lin = karras_sigmas(9, 0.5, 5.0, rho=1.0)[:-1].double()
    assert torch.allclose(lin, torch.linspace(5.0, 0.5, 9, dtype=torch.float64), atol=1e-6)
    log = exponential_sigmas(9, 0.5, 5.0)[:-1].double().log()
    assert torch.allclose(log.diff(), log.diff()[:1].expand(8), atol=1e-6)
    # rho = 7 lies between the linear (rho = 1) and the log-linear (rho -> infinity) ladders
    k = karras_sigmas(9, 0.5, 5.0)[1:-2]
    assert (k < karras_sigmas(9, 0.5, 5.0, rho=1.0)[1:-2]).all() and (k > exponential_sigmas(9, 0.5, 5.0)[1:-2]).all()


@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule()])
def test_schedule_spacings_include_the_ladders(schedule):
    assert set(SPACINGS) == {"leading", "trailing", "linspace", "karras", "exponential"}
    for steps in (1, 7, 2000):
        for spacing in SPACINGS:
            if spacing in ("leading", "trailing", "linspace") and steps > schedule.num_steps:
                continue
            sigmas = schedule.inference_sigmas(steps, spacing)
            assert len(sigmas) == steps + 1 and sigmas[-1] == 0 and (sigmas[:-1] > sigmas[1:]).all()
    k = schedule.inference_sigmas(12, "karras")
    assert torch.equal(k, karras_sigmas(12, schedule.sigma_min, schedule.sigma_max))
    assert k[0].item() == pytest.approx(schedule.sigma_max) and k[-2].item() == pytest.approx(schedule.sigma_min)
    assert torch.equal(schedule.inference_sigmas(12, "exponential"),
                       exponential_sigmas(12, schedule.sigma_min, schedule.sigma_max))
    with pytest.raises(ValueError, match="continuous sigma ladder"):
        schedule.timesteps(12, "karras")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        schedule.inference_sigmas(0, "exponential")


def test_bad_ladders_are_errors():
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(5, 0.0, 1.0)
    with pytest.raises(ValueError, match="rho"):
        karras_sigmas(5, 0.1, 1.0, rho=0)


@pytest.mark.parametrize("name", ["heun", "dpmpp_2m"])
@pytest.mark.parametrize("spacing", ["karras", "exponential"])
def test_ode_samplers_converge_on_the_ladders(name, spacing):
    errors = [abs(sample_std(name, steps, spacing=spacing) - 0.5) for steps in (10, 50)]
    assert errors[1] < 0.005 and errors[1] < errors[0], errors


# -- dpmpp_2m_sde ------------------------------------------------------------------------------
def test_dpmpp_2m_sde_with_eta_0_is_dpmpp_2m_exactly():
    sigmas = LinearSchedule().inference_sigmas(15, "trailing").double()
    x = torch.randn(4, 3, 7, dtype=torch.float64) * sigmas[0]
    denoise = gaussian_denoiser(0.7)
    ref = registry.build("sampler", "dpmpp_2m")(denoise, x.clone(), sigmas)
    out = registry.build("sampler", {"name": "dpmpp_2m_sde", "eta": 0.0})(denoise, x.clone(), sigmas,
                                                                          torch.Generator().manual_seed(0))
    assert torch.equal(out, ref)
    assert not registry.build("sampler", {"name": "dpmpp_2m_sde", "eta": 0.0}).stochastic
    assert registry.build("sampler", "dpmpp_2m_sde").stochastic


@pytest.mark.parametrize("cfg", [{"eta": 0.5}, {"solver_type": "heun"}, {"solver_type": "heun", "eta": 0.0}])
def test_dpmpp_2m_sde_variants_reach_gaussian_std(cfg):
    schedule = LinearSchedule()
    for steps, tol in ((25, 0.03), (200, 0.01)):
        sigmas = schedule.inference_sigmas(steps).double()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(20000, 1, generator=g, dtype=torch.float64) * schedule.prior_scale(float(sigmas[0]))
        out = registry.build("sampler", {"name": "dpmpp_2m_sde", **cfg})(gaussian_denoiser(0.5), x, sigmas, g)
        assert abs(out.std().item() - 0.5) < tol, (cfg, steps, out.std().item())


# -- sde (predictor-corrector) -----------------------------------------------------------------
@pytest.mark.parametrize("step_norm, bound", [("batch", 0.01), ("example", 0.02)])
def test_sde_sampler_error_falls_with_steps(step_norm, bound):
    """Per-example steps (the default, so a clip ignores its batch) keep a larger corrector bias
    (0.017 at 200 steps here) than Song et al.'s batch-averaged steps (0.006)."""
    errors = [abs(sample_std({"name": "sde", "step_norm": step_norm}, steps) - 0.5) for steps in (5, 25, 200)]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < bound, errors


@pytest.mark.parametrize("step_norm", ["example", "batch"])
def test_sde_sampler_on_high_dimensional_examples(step_norm):
    """Per-example corrector steps need many dims per example (as any mel has); then they work too."""
    schedule = LinearSchedule()
    sigmas = schedule.inference_sigmas(50).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 512, generator=g, dtype=torch.float64) * schedule.prior_scale(float(sigmas[0]))
    sampler = registry.build("sampler", {"name": "sde", "step_norm": step_norm})
    out = sampler(gaussian_denoiser(0.5), x, sigmas, g)
    assert abs(out.std().item() - 0.5) < 0.025


def test_sde_corrector_step_is_per_example_or_per_batch():
    from audiodiff.diffusion.samplers import snr_step_size

    grad = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    z = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    per_example = snr_step_size(grad, z, 0.5, "example")
    assert per_example.shape == (2, 1) and torch.allclose(per_example.flatten(), torch.tensor([0.5, 0.125]))
    # batch: norms averaged first, sqrt(2) and 2 sqrt(2) -> 1.5 sqrt(2); eps = 2 (0.5 * sqrt(2) / (1.5 sqrt(2)))^2
    assert snr_step_size(grad, z, 0.5, "batch").item() == pytest.approx(2 / 9)


def test_sde_corrector_calls_and_order():
    """Alg. 2's order: predictor sigma -> sigma_next, then the corrector at sigma_next; the last step denoises."""
    seen = []

    def denoise(x, sigma):
        seen.append(float(sigma[0]))
        return gaussian_denoiser(1.0)(x, sigma)

    sigmas = torch.tensor([4.0, 2.0, 1.0, 0.0])
    registry.build("sampler", {"name": "sde", "corrector_steps": 2})(denoise, torch.randn(2, 8) * 4, sigmas)
    assert seen == [4.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0]


# -- langevin ------------------------------------------------------------------------------------
@pytest.mark.parametrize("consistent, relative", [(True, 0.1), (False, 2.0)])
def test_langevin_default_step_is_a_multiple_of_sigma_min_squared(consistent, relative):
    sigmas = LinearSchedule().inference_sigmas(10).double()
    x = torch.randn(6, 4, dtype=torch.float64) * sigmas[0]
    runs = []
    for extra in ({}, {"step_lr": relative * float(sigmas[-2]) ** 2}):
        cfg = {"name": "langevin", "consistent": consistent, **extra}
        runs.append(registry.build("sampler", cfg)(gaussian_denoiser(0.5), x, sigmas, torch.Generator().manual_seed(4)))
    assert torch.allclose(runs[0], runs[1], rtol=1e-12, atol=1e-12)
    assert registry.build("sampler", "langevin").consistent


def test_langevin_calls_each_level_n_steps_then_denoises():
    seen = []

    def denoise(x, sigma):
        seen.append(float(sigma[0]))
        return gaussian_denoiser(1.0)(x, sigma)

    sampler = registry.build("sampler", {"name": "langevin", "n_steps_each": 3})
    sampler(denoise, torch.randn(2, 5), torch.tensor([2.0, 1.0, 0.0]))
    assert seen == [2.0] * 3 + [1.0] * 4


def test_langevin_samples_the_noised_distribution_at_one_level():
    """Many small steps at one level sigma reach N(0, s^2 + sigma^2) (exactly: v / (1 - alpha / 4v))."""
    s, sigma, alpha = 0.5, 1.0, 0.1
    g = torch.Generator().manual_seed(5)
    x = torch.randn(20000, 1, generator=g, dtype=torch.float64) * 3.0  # far from stationary
    sampler = registry.build("sampler", {"name": "langevin", "n_steps_each": 200, "step_lr": alpha,
                                         "consistent": False})
    out = sampler(gaussian_denoiser(s), x, torch.tensor([sigma, 0.0], dtype=torch.float64), g)
    v = s**2 + sigma**2
    stationary_std = math.sqrt(v / (1 - alpha / (4 * v)))
    assert out.std().item() == pytest.approx(stationary_std * s**2 / v, abs=0.004)  # then denoised


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("sigma, target", [(2.0, 2.0), (2.0, 1.5), (2.0, 0.3)])
def test_consistent_step_leaves_exactly_the_target_noise(fraction, sigma, target):
    """Point data (the denoiser is exact): the step's output holds noise of std ``target``, whatever the step
    size, also where the step must grow to get there (2 -> 0.3 with fraction 0.1)."""
    from audiodiff.diffusion.samplers import consistent_step

    g = torch.Generator().manual_seed(3)
    x0 = torch.full((40000, 1), 0.7, dtype=torch.float64)
    x = x0 + sigma * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    out = consistent_step(x, torch.tensor(sigma, dtype=torch.float64), x0, torch.tensor(fraction, dtype=torch.float64),
                          torch.tensor(target, dtype=torch.float64), z)
    assert (out - x0).std().item() == pytest.approx(target, rel=0.02)
    assert (out - x0).mean().item() == pytest.approx(0.0, abs=5 * target / 200)  # 5 standard errors


def test_consistent_langevin_tracks_the_levels_where_plain_langevin_overshoots():
    """On N(0, s^2) data the plain default step (x <- denoised + sqrt(2) sigma z) leaves each level with
    about sqrt(2) times its noise at high sigma; the consistent step keeps the level's noise."""
    s, sigma = 0.5, 8.0
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40000, 1, generator=g, dtype=torch.float64) * math.sqrt(s**2 + sigma**2)
    sigmas = torch.tensor([sigma, sigma / 2], dtype=torch.float64)  # one level, then stop before the last
    seen = {}
    for consistent in (False, True):
        sampler = registry.build("sampler", {"name": "langevin", "consistent": consistent, "n_steps_each": 4})
        state = sampler.init_state(torch.cat([sigmas, sigmas.new_zeros(1)]))
        denoised = gaussian_denoiser(s)(x, sigmas[:1].expand(x.shape[0]))
        out = sampler.step(gaussian_denoiser(s), x, denoised, sigmas[0], sigmas[1], g, state)
        seen[consistent] = out.std().item()
    assert seen[True] == pytest.approx(math.sqrt(s**2 + (sigma / 2) ** 2), rel=0.03)
    assert seen[False] > 1.3 * math.sqrt(s**2 + sigma**2)


@pytest.mark.parametrize("cfg, match", [
    ({"name": "dpmpp_2m_sde", "eta": -1}, "eta"),
    ({"name": "dpmpp_2m_sde", "solver_type": "rk4"}, "solver_type"),
    ({"name": "sde", "snr": 0}, "snr"),
    ({"name": "sde", "step_norm": "global"}, "step_norm"),
    ({"name": "langevin", "n_steps_each": 0}, "n_steps_each"),
    ({"name": "langevin", "step_lr": -1e-5}, "step_lr"),
])
def test_bad_sampler_options_are_config_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        registry.build("sampler", cfg)


@pytest.mark.parametrize("name", ["heun", "sde"])
def test_a_leap_from_a_vp_sigma_max_keeps_the_gaussian_std(name, monkeypatch):
    """The cosine schedule's trailing 20-step ladder starts with a leap from sigma 20291 to 12.8."""
    import audiodiff.diffusion.samplers as S
    from audiodiff.registry import build

    s = 0.5
    sigmas = build("schedule", "cosine").inference_sigmas(20, "trailing")
    assert sigmas[0] > 1000 * sigmas[1]

    def denoise(x, sigma):
        return x * s**2 / (s**2 + sigma.reshape(-1, 1) ** 2)

    def std() -> float:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(512, 64, generator=g) * (s**2 + sigmas[0] ** 2) ** 0.5
        return float(build("sampler", name)(denoise, x, sigmas, g).std())

    assert abs(std() - s) < 0.1 * s
    monkeypatch.setattr(S, "LEAP_RATIO", float("inf"))  # the plain update on the leap
    assert abs(std() - s) > s, "without the leap rule this ladder breaks the sampler"


# -- where the ladder ends, and how training draws noise levels -------------------------------------
@pytest.mark.parametrize("spacing", SPACINGS)
def test_sigma_min_ends_every_ladder_at_or_above_it(spacing):
    schedule = CosineSchedule()
    for steps in (1, 5, 25):
        sigmas = schedule.inference_sigmas(steps, spacing, sigma_min=0.6)
        assert len(sigmas) == steps + 1 and sigmas[-1] == 0 and (sigmas[:-1] > sigmas[1:]).all()
        assert sigmas[0].item() == pytest.approx(schedule.sigma_max, rel=1e-5) or spacing == "leading"
        assert sigmas[-2].item() >= 0.6 * (1 - 1e-4)
        if steps > 1 and spacing in ("karras", "exponential", "linspace"):
            assert sigmas[-2].item() == pytest.approx(0.6, rel=0.02)  # linspace: the nearest timestep
    # no sigma_min is the schedule's own smallest level: the ladders are unchanged
    assert torch.equal(schedule.inference_sigmas(10, "trailing", None), schedule.inference_sigmas(10, "trailing"))


def test_timesteps_from_first_span_the_rest_of_the_table():
    schedule = CosineSchedule()
    t = schedule.timesteps(4, "trailing", first=200)
    assert t.tolist() == [999, 799, 599, 399]  # n = 800: 200 + round(800 - k 200) - 1
    assert schedule.timesteps(4, "leading", first=200).tolist() == [800, 600, 400, 200]
    assert schedule.timesteps(3, "linspace", first=200).tolist() == [999, 600, 200]
    with pytest.raises(ValueError, match="between 1 and the 800 training steps from timestep 200"):
        schedule.timesteps(801, "trailing", first=200)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 1e9])
def test_bad_sigma_min_is_an_error(bad):
    with pytest.raises(ValueError, match="sigma_min must be in"):
        CosineSchedule().inference_sigmas(5, "karras", sigma_min=bad)


def test_lognormal_training_sigmas_follow_p_mean_and_p_std():
    schedule = CosineSchedule(train_sigmas="lognormal", p_mean=-0.6, p_std=1.4)
    sigmas = schedule.sample_sigmas(100_000, torch.Generator().manual_seed(0))
    assert sigmas.min() >= schedule.sigma_min and sigmas.max() <= schedule.sigma_max
    assert sigmas.log().median().item() == pytest.approx(-0.6, abs=0.02)
    inner = sigmas.log()[(sigmas > 0.05) & (sigmas < 5)]  # away from the clamps
    assert inner.numel() > 50_000
    # uniform timesteps on the cosine schedule put far fewer draws below sigma 0.3
    uniform = CosineSchedule().sample_sigmas(100_000, torch.Generator().manual_seed(0))
    assert (uniform < 0.3).float().mean() < 0.2 < 0.3 < (sigmas < 0.3).float().mean()


@pytest.mark.parametrize("kwargs, match", [({"train_sigmas": "normal"}, "unknown train_sigmas"),
                                           ({"p_std": 0.0}, "p_std > 0"), ({"p_mean": float("inf")}, "finite")])
def test_bad_training_sigma_settings_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CosineSchedule(**kwargs)
