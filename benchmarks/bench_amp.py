"""Mixed precision on the CPU: one training step (forward + backward) in fp32 vs bf16 autocast.

The speech recipe's model (unet1d, 64 channels, 3.5 M parameters, 1 s of 8 kHz audio as 64 mel
bins x 63 frames), batch 16, the two variants interleaved; median of the repeats.  This is what
``TrainConfig(amp="auto")`` is decided by: it autocasts on CUDA only.

    .venv/bin/python benchmarks/bench_amp.py [--quick]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment()  # thread and OpenMP settings must be in the env before torch loads

import torch  # noqa: E402

import audiodiff  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "amp.md"
CONFIG = {
    "representation": {"name": "mel", "sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64,
                       "f_min": 20.0, "f_max": 4000.0},
    "net": {"name": "unet1d", "channels": 64, "channel_mults": [1, 2, 2], "num_res_blocks": 2, "attention_levels": [2]},
    "seconds": 1.0,
}


@dataclass(frozen=True)
class Settings:
    repeats: int = 15
    batch: int = 16


QUICK = Settings(repeats=3, batch=4)


def step_fn(model: audiodiff.DiffusionModel, x0: torch.Tensor, dtype: torch.dtype | None):
    def step() -> float:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model.loss(x0, generator=torch.Generator().manual_seed(0))
        loss.backward()
        return float(loss)

    return step


def run(settings: Settings) -> str:
    torch.manual_seed(0)
    model = audiodiff.DiffusionModel(CONFIG).train()
    x0 = torch.randn(settings.batch, *model.sample_shape(model.representation.frames_for(1.0)))
    variants = {"fp32": None, "bf16 autocast": torch.bfloat16}
    times: dict[str, list[float]] = {name: [] for name in variants}
    losses = {}
    for _ in range(settings.repeats):  # interleaved, so load changes hit both
        for name, dtype in variants.items():
            timing = common.time_call(step_fn(model, x0, dtype), repeats=1, warmup=0)
            times[name].append(timing.median)
            losses[name] = step_fn(model, x0, dtype)()
    base = sorted(times["fp32"])[len(times["fp32"]) // 2]
    rows = []
    for name in variants:
        median = sorted(times[name])[len(times[name]) // 2]
        rows.append([name, f"{median * 1e3:.1f}", f"{base / median:.2f}x", f"{losses[name]:.4f}"])
    table = common.markdown_table(["variant", "ms per step (median)", "speed vs fp32", "loss"], rows)
    return (f"## One training step, batch {settings.batch}, {settings.repeats} interleaved repeats\n\n{table}\n\n"
            "A speed below 1x means bf16 autocast is slower than fp32 on this CPU; `amp=\"auto\"` then keeps fp32.")


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main("audiodiff mixed-precision benchmark", RESULTS, run, Settings(), QUICK, argv,
                                 __doc__.split("\n\n")[0], "3 repeats at batch 4; prints only")


if __name__ == "__main__":
    sys.exit(main())
