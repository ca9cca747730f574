"""Core benchmarks of audiodiff on CPU, measured side by side in one run.

1. Denoiser call: ``model.denoise(x, sigma)`` (forward, no grad, batch 4, 2 s of audio at
   22050 Hz / hop 256 / 80 mels, so 173 frames) of ``unet1d`` and ``unet2d`` at similar parameter
   counts.  FLOPs of one call are counted with ``torch.utils.flop_counter.FlopCounterMode``
   (convolutions, matmuls and attention; norms and activations are not counted), and the achieved
   GFLOP/s is compared with a 1024 x 1024 float32 matmul timed in the same run.
2. Sampler overhead: one small ``unet1d`` driven for 50 steps by audiodiff's DDIM (sigma space,
   through ``audiodiff.sampling.run_sampler``) and by diffusers' ``DDIMScheduler`` configured to the
   same schedule, in the hand-written loop that diffusers pipelines use.  Both start from the same
   ``x_T``; the final samples are compared, and the time spent outside the net (measured with
   forward hooks on the net) is the sampler's overhead.  The diffusers loop runs twice: under
   ``torch.no_grad()`` as its pipelines do (the baseline), and under ``torch.inference_mode()`` as
   ``run_sampler`` does, to separate the grad mode from the sampler code.  A stub net (the ideal
   eps of unit-Gaussian data, a few cheap ops) repeats the comparison without the denoiser's cost.

Run from the repository root::

    .venv/bin/python benchmarks/bench_core.py           # full run, writes benchmarks/results/core.md
    .venv/bin/python benchmarks/bench_core.py --quick   # smaller, prints only

Speeds are reported as ratios against a baseline measured in the same run; nothing is asserted.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment()  # thread and OpenMP settings must be in the env before torch loads

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import audiodiff  # noqa: E402
from audiodiff.diffusion.samplers import DDIM  # noqa: E402
from audiodiff.sampling import inference_sigmas, run_sampler  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "core.md"

BATCH = 4
SECONDS = 2.0  # 2 s at 22050 Hz, hop 256 -> 2 * 22050 // 256 + 1 = 173 frames of 80 mels
#: nets of similar size (2-4 M parameters) for the denoiser comparison
DENOISER_NETS = {"unet1d": {"name": "unet1d", "channels": 64}, "unet2d": {"name": "unet2d", "channels": 48}}
#: a small net (about 1 M parameters) so the sampler is not lost in the denoiser's cost
SAMPLER_NET = {"name": "unet1d", "channels": 32}
SCHEDULE = {"beta_start": 1e-4, "beta_end": 0.02, "num_train_timesteps": 1000}


@dataclass(frozen=True)
class Settings:
    """What a run measures; ``--quick`` shrinks repeats and steps."""

    steps: int = 50
    denoiser_repeats: int = 5
    sampler_repeats: int = 5
    stub_repeats: int = 20
    matmul_repeats: int = 20
    warmup: int = 1


QUICK = Settings(steps=10, denoiser_repeats=2, sampler_repeats=2, stub_repeats=5, matmul_repeats=5)


def build_model(net: dict) -> audiodiff.DiffusionModel:
    """A default (mel, linear schedule, eps) model of ``SECONDS`` with the given net config."""
    # DDPM's linear schedule and eps-prediction: what diffusers' DDIMScheduler is configured for below
    config = {"net": dict(net), "seconds": SECONDS, "schedule": "linear", "preconditioning": "eps"}
    return audiodiff.DiffusionModel(config).eval()


def make_input(model: audiodiff.DiffusionModel, generator: torch.Generator) -> torch.Tensor:
    """``(BATCH, *sample_shape)`` standard normal noise for ``SECONDS`` of audio."""
    frames = model.representation.frames_for(SECONDS)
    return torch.randn(BATCH, *model.sample_shape(frames), generator=generator)


# -- 1. denoiser calls -----------------------------------------------------------------------
def matmul_gflops(repeats: int, n: int = 1024) -> tuple[float, common.Timing]:
    """GFLOP/s of an ``n x n`` float32 matmul (median of ``repeats``)."""
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    timing = common.time_call(lambda: torch.mm(a, b, out=out), repeats=repeats, warmup=3)
    return 2 * n**3 / timing.median / 1e9, timing


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn`` as counted by ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench_denoisers(settings: Settings, matmul: float) -> tuple[list[list], dict]:
    """Rows of the denoiser table and the raw numbers."""
    rows, raw = [], {}
    generator = torch.Generator().manual_seed(0)
    for label, net in DENOISER_NETS.items():
        model = build_model(net)
        x = make_input(model, generator)
        sigma = model.schedule.sigmas[500].expand(BATCH)  # (B,) a mid-range noise level

        def call() -> torch.Tensor:
            with torch.inference_mode():
                return model.denoise(x, sigma)

        flops = count_flops(call)
        timing = common.time_call(call, repeats=settings.denoiser_repeats, warmup=settings.warmup)
        gflops = flops / timing.median / 1e9
        raw[label] = {"params": model.num_parameters(), "flops": flops, "timing": timing}
        rows.append([
            f"`{label}` (channels={net['channels']})",
            f"{model.num_parameters() / 1e6:.2f} M",
            "x".join(map(str, x.shape)),
            f"{flops / 1e9:.2f}",
            f"{timing.median * 1e3:.1f}",
            timing.spread(),
            f"{gflops:.1f}",
            f"{100 * gflops / matmul:.0f}%",
        ])
    base = raw["unet1d"]["timing"].median
    for row, label in zip(rows, DENOISER_NETS):
        row.append(f"{raw[label]['timing'].median / base:.2f}x")
    return rows, raw


# -- 2. sampler overhead ---------------------------------------------------------------------
class NetTimer:
    """Forward hooks that add up the seconds spent inside ``net`` (and count its calls)."""

    def __init__(self, net: nn.Module) -> None:
        self.seconds, self.calls, self._start = 0.0, 0, 0.0
        self._handles = [net.register_forward_pre_hook(self._pre), net.register_forward_hook(self._post)]

    def _pre(self, module, args) -> None:
        self._start = time.perf_counter()

    def _post(self, module, args, output) -> None:
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class StubNet(nn.Module):
    """A near-free stand-in for the net: the ideal eps for unit-Gaussian data.

    For ``x0 ~ N(0, I)``, ``E[eps | x_t] = sqrt(1 - alpha_bar) * x_t``; sampling with it ends with
    samples of std 1.  ``c_noise`` is the (continuous) timestep of ``schedule``.
    """

    def __init__(self, schedule) -> None:
        super().__init__()
        self.schedule = schedule

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, **kwargs) -> torch.Tensor:
        sigma = self.schedule.t_to_sigma(torch.as_tensor(c_noise).reshape(-1))  # (B,) or (1,)
        scale = sigma * (1 + sigma**2).rsqrt()  # sqrt(1 - alpha_bar)
        return scale.reshape(-1, *([1] * (x.dim() - 1))) * x


def randomize_zero_layers(net: nn.Module) -> None:
    """Re-initialise the zero-initialised layers so an untrained net predicts non-zero eps."""
    for module in net.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) and not weight.any():
            module.reset_parameters()


def diffusers_scheduler(steps: int):
    """diffusers' DDIM on audiodiff's default schedule (linear betas, trailing spacing, eps)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(
        num_train_timesteps=SCHEDULE["num_train_timesteps"], beta_start=SCHEDULE["beta_start"],
        beta_end=SCHEDULE["beta_end"], beta_schedule="linear", timestep_spacing="trailing",
        set_alpha_to_one=True, prediction_type="epsilon", clip_sample=False, steps_offset=0,
    )
    return scheduler


def ours_fn(model: audiodiff.DiffusionModel, x_T: torch.Tensor, steps: int):
    """audiodiff's DDIM(eta=0) from ``x_T`` (DDPM space): ``x_sigma = x_T * sqrt(1 + sigma_max^2)``."""
    sampler = DDIM(eta=0.0)

    def run() -> torch.Tensor:
        sigmas = inference_sigmas(model, steps, "trailing")  # (steps + 1,)
        x = x_T * model.schedule.prior_scale(float(sigmas[0]))
        return run_sampler(model, x, sigmas, sampler)

    return run


def diffusers_fn(net: nn.Module, scheduler, x_T: torch.Tensor, steps: int, grad_mode=torch.no_grad):
    """The denoising loop of a diffusers pipeline around ``net(x_t, t)`` (eps prediction).

    ``grad_mode``: ``torch.no_grad`` (what diffusers pipelines use) or ``torch.inference_mode``.
    """

    def run() -> torch.Tensor:
        with grad_mode():
            scheduler.set_timesteps(steps)
            x = x_T * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                x_in = scheduler.scale_model_input(x, t)
                eps = net(x_in, t)  # our net's c_noise is the (continuous) DDPM timestep
                x = scheduler.step(eps, t, x).prev_sample
            return x

    return run


OURS, BASELINE, DIFFUSERS_IM = "audiodiff DDIM", "diffusers DDIMScheduler (no_grad)", "diffusers DDIMScheduler (inference_mode)"


def bench_sampler_pair(model: audiodiff.DiffusionModel, x_T: torch.Tensor, steps: int, repeats: int,
                       warmup: int) -> dict:
    """Time the samplers interleaved (rotating order); return times, net times and outputs."""
    runs = {
        OURS: ours_fn(model, x_T, steps),
        BASELINE: diffusers_fn(model.net, diffusers_scheduler(steps), x_T, steps, torch.no_grad),
        DIFFUSERS_IM: diffusers_fn(model.net, diffusers_scheduler(steps), x_T, steps, torch.inference_mode),
    }
    timer = NetTimer(model.net)
    stats = {name: {"total": [], "net": [], "calls": 0} for name in runs}
    outputs = {}
    try:
        for rep in range(warmup + repeats):
            names = list(runs)
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                timer.reset()
                start = time.perf_counter()
                outputs[name] = runs[name]()
                total = time.perf_counter() - start
                if rep >= warmup:
                    stats[name]["total"].append(total)
                    stats[name]["net"].append(timer.seconds)
                    stats[name]["calls"] = timer.calls
    finally:
        timer.remove()
    for name in runs:
        s = stats[name]
        s["overhead"] = [t - n for t, n in zip(s["total"], s["net"])]
        s["total_t"] = common.Timing(tuple(s["total"]))
        s["net_t"] = common.Timing(tuple(s["net"]))
        s["overhead_t"] = common.Timing(tuple(s["overhead"]))
    return {"stats": stats, "outputs": outputs}


def bench_samplers(settings: Settings) -> tuple[list[list], list[list], dict]:
    """Rows of the sampler table, of the agreement table, and the raw numbers."""
    model = build_model(SAMPLER_NET)
    randomize_zero_layers(model.net)
    x_T = make_input(model, torch.Generator().manual_seed(1))
    stub = build_model(SAMPLER_NET)
    stub.net = StubNet(stub.schedule)
    cases = {
        f"`unet1d` channels={SAMPLER_NET['channels']} ({model.num_parameters() / 1e6:.2f} M)": (model, settings.sampler_repeats),
        "stub net (ideal eps of N(0, 1) data)": (stub, settings.stub_repeats),
    }
    rows, agree, raw = [], [], {}
    for label, (m, repeats) in cases.items():
        result = bench_sampler_pair(m, x_T, settings.steps, repeats, settings.warmup)
        raw[label] = result
        s_diff = result["stats"][BASELINE]
        for name, s in result["stats"].items():
            rows.append([
                label, name, s["calls"],
                f"{s['total_t'].median * 1e3:.1f}",
                f"{s['net_t'].median * 1e3:.1f}",
                f"{s['overhead_t'].median * 1e3:.2f}",
                f"{s['overhead_t'].median / settings.steps * 1e6:.0f}",
                f"{s['total_t'].median / s_diff['total_t'].median:.3f}x",
                f"{s['overhead_t'].median / s_diff['overhead_t'].median:.2f}x",
            ])
        a, b = result["outputs"][OURS], result["outputs"][BASELINE]
        diff = (a - b).abs().max().item()
        scale, rms = b.abs().max().item(), b.pow(2).mean().sqrt().item()
        agree.append([label, f"{diff:.2e}", f"{diff / scale:.2e}", f"{diff / rms:.2e}",
                      f"{(a - b).abs().mean().item():.2e}", f"{a.std().item():.4g} / {b.std().item():.4g}"])
    return rows, agree, raw


# -- report ----------------------------------------------------------------------------------
def run(settings: Settings) -> str:
    """Run all benchmarks; return the markdown body (tables and notes)."""
    matmul, matmul_t = matmul_gflops(settings.matmul_repeats)
    den_rows, _ = bench_denoisers(settings, matmul)
    # matmul again after the nets, to see drift from other load on the machine
    matmul_after, _ = matmul_gflops(settings.matmul_repeats)
    samp_rows, agree_rows, _ = bench_samplers(settings)

    parts = [
        "## 1. Denoiser call (`model.denoise`, batch 4, 2 s = 173 frames x 80 mels, inference mode)",
        "",
        f"Reference: 1024x1024 float32 matmul = **{matmul:.1f} GFLOP/s** "
        f"(median of {settings.matmul_repeats}, {matmul_t.median * 1e3:.2f} ms; "
        f"{matmul_after:.1f} GFLOP/s when re-measured after the nets).",
        "",
        common.markdown_table(
            ["net", "params", "input", "GFLOP/call", "median ms", "min-max ms", "GFLOP/s", "of matmul", "time vs unet1d"],
            den_rows,
        ),
        "",
        f"Median of {settings.denoiser_repeats} calls after {settings.warmup} warm-up. FLOPs: one forward under "
        "`FlopCounterMode` (conv, matmul, attention; GroupNorm/SiLU/elementwise not counted).",
        "",
        f"## 2. Sampler overhead: DDIM (eta=0), {settings.steps} steps, trailing spacing, batch 4",
        "",
        common.markdown_table(
            ["net", "sampler", "net calls", "total ms", "in net ms", "overhead ms", "overhead us/step",
             "total vs diffusers", "overhead vs diffusers"],
            samp_rows,
        ),
        "",
        f"Median of {settings.sampler_repeats} runs (stub: {settings.stub_repeats}) after {settings.warmup} warm-up, "
        "the three loops interleaved (rotating which goes first). Ratios are against diffusers under `no_grad`. `in net` is time inside `model.net` (forward hooks); "
        "`overhead` = total - in net, per run, then the median. audiodiff: `inference_sigmas` + prior scaling + "
        "`run_sampler(model, x, sigmas, DDIM())` (inference mode; preconditioning `c_in`, `c_noise`, "
        "`c_skip/c_out` count as overhead). diffusers: `set_timesteps` + loop of `scale_model_input`, "
        "`net(x_t, t)`, `step(...).prev_sample` under `torch.no_grad()` as in its pipelines, and again under "
        "`torch.inference_mode()` like `run_sampler`.",
        "",
        "### Agreement of the final samples (same `x_T`; audiodiff starts at `x_T * sqrt(1 + sigma_max^2)`)",
        "",
        common.markdown_table(["net", "max abs diff", "/ max abs sample", "/ rms sample", "mean abs diff",
                               "std audiodiff / diffusers"], agree_rows),
        "",
        "audiodiff vs diffusers under `no_grad`. The zero-initialised layers of the untrained net are re-initialised "
        "at random so it predicts a non-trivial (and not data-like) eps, hence the large samples. With the stub's ideal "
        "eps the std tends to 1 as the steps grow (DDIM with few steps ends below 1).",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main("audiodiff core benchmarks", RESULTS, run, Settings(), QUICK, argv,
                                 __doc__.split("\n\n")[0], "fewer repeats and 10 sampler steps; prints only")


if __name__ == "__main__":
    sys.exit(main())
