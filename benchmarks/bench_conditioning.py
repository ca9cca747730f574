"""Conditioning benchmarks of audiodiff on CPU, measured side by side in one run.

1. Prompt encoding: the per-prompt cost of each conditioner turning prompt strings into net inputs
   (``conditioner(prompts)`` under ``torch.inference_mode()``, as :func:`audiodiff.generate` calls
   it), for batches of 1 and 16 prompts: ``label`` (an embedding lookup), ``tokens`` (the
   character-level Transformer, dim 128, 2 layers) and ``text`` (the bundled all-MiniLM-L6-v2 with a
   learned projection to 128).  ``text`` is timed cold (every call on prompts it has not seen, so
   the sentence encoder runs) and warm (the same prompts again, served from its embedding cache).
   Loading the sentence encoder (its first call) is timed once, apart.  Ratios are against ``label``.
2. Guidance: one classifier-free-guided denoiser call ``D_uncond + s * (D_cond - D_uncond)`` made as
   one batched forward of ``2B`` (``model.paired_inputs`` through ``guided_denoiser``, what
   :func:`audiodiff.generate` does) vs two separate forwards of ``B`` (conditional, then
   unconditional), for one ``unet1d`` (channels 64, 3.5 M parameters) on 1 s of 8 kHz audio (hop
   128, 64 mels: 63 frames), batch 1, 4 and 16.  Both give the same output up to float rounding;
   the report gives the largest difference.

Run from the repository root::

    .venv/bin/python benchmarks/bench_conditioning.py           # full run, writes benchmarks/results/conditioning.md
    .venv/bin/python benchmarks/bench_conditioning.py --quick   # fewer repeats; prints only

Speeds are reported as ratios against a baseline measured in the same run; nothing is asserted.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

if __package__:
    from . import common
    from .bench_core import randomize_zero_layers
else:  # run as a script: benchmarks/ is on sys.path
    import common
    from bench_core import randomize_zero_layers

common.configure_environment()  # thread and OpenMP settings must be in the env before torch loads

import torch  # noqa: E402

import audiodiff  # noqa: E402
from audiodiff import registry  # noqa: E402
from audiodiff.sampling import inputs_denoiser  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "conditioning.md"

PROMPT_BATCHES = (1, 16)
GUIDANCE_BATCHES = (1, 4, 16)
GUIDANCE_SCALE = 3.0
SECONDS = 1.0
MEL = {"name": "mel", "sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64}
NET = {"name": "unet1d", "channels": 64}
TOKENS = {"name": "tokens", "dim": 128, "layers": 2}
TEXT = {"name": "text", "dim": 128}

SOURCES = ("a dog", "a small bell", "heavy rain", "an old piano", "a crowd", "a kettle", "a violin", "wind",
           "a train", "a child")
ACTIONS = ("barking", "ringing twice", "falling", "playing a slow chord", "cheering", "whistling", "bowing a long note",
           "howling", "passing by", "laughing")
PLACES = ("in a hall", "outside at night", "on a tin roof", "in a small room", "far away", "in a kitchen",
          "close to the microphone", "through trees", "in a tunnel", "in a park")


@dataclass(frozen=True)
class Settings:
    """What a run measures; ``--quick`` shrinks the repeats."""

    encoder_repeats: int = 50
    guidance_repeats: int = 30
    warmup: int = 2


QUICK = Settings(encoder_repeats=5, guidance_repeats=3, warmup=1)


def prompt_pool() -> list[str]:
    """1000 distinct captions, e.g. ``"a dog barking in a hall"``."""
    return [f"{s} {a} {p}" for s, a, p in itertools.product(SOURCES, ACTIONS, PLACES)]


def interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, common.Timing]:
    """Time each call ``repeats`` times after ``warmup``, round-robin in rotating order, so that load
    from other work on the machine falls on all of them alike."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(warmup + repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            start = time.perf_counter()
            calls[name]()
            if rep >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: common.Timing(tuple(t)) for name, t in times.items()}


# -- 1. prompt encoding ----------------------------------------------------------------------
def encoder_call(conditioner, batches: Iterator[list[str]]) -> Callable[[], object]:
    """A call that encodes the next batch of prompts under inference mode."""

    def call():
        with torch.inference_mode():
            return conditioner(next(batches))

    return call


def bench_encoders(settings: Settings) -> tuple[list[list], float, dict]:
    """Rows of the encoder table, the sentence encoder's load time (s), and the raw timings."""
    pool = prompt_pool()
    if (settings.warmup + settings.encoder_repeats) * sum(PROMPT_BATCHES) + max(PROMPT_BATCHES) > len(pool):
        raise ValueError("the prompt pool is too small for this many repeats")
    label = registry.build("conditioner", {"name": "label", "labels": pool})
    tokens = registry.build("conditioner", TOKENS)
    text = registry.build("conditioner", TEXT)
    start = time.perf_counter()
    with torch.inference_mode():
        text(["a sound"])  # loads the sentence encoder (a prompt not in the pool)
    load_seconds = time.perf_counter() - start
    fresh = iter(pool)  # cold text: every call takes prompts never seen before, from the front of the pool
    rows, raw = [], {}
    for batch in PROMPT_BATCHES:
        same = pool[-batch:]  # every other call's prompts, from the back of the pool
        text.encode_text(same)  # warm: in the cache before the first call
        unseen = (list(itertools.islice(fresh, batch)) for _ in itertools.count())
        calls = {
            "`label`": encoder_call(label, itertools.repeat(same)),
            "`tokens` (dim 128, 2 layers)": encoder_call(tokens, itertools.repeat(same)),
            "`text` MiniLM, cold": encoder_call(text, unseen),
            "`text` MiniLM, warm (cached)": encoder_call(text, itertools.repeat(same)),
        }
        timings = interleaved(calls, settings.encoder_repeats, settings.warmup)
        raw[batch] = timings
        base = timings["`label`"].median
        for name, timing in timings.items():
            rows.append([name, batch, f"{timing.median * 1e3:.3f}", timing.spread(),
                         f"{timing.median / batch * 1e3:.3f}", f"{timing.median / base:.1f}x"])
    return rows, load_seconds, raw


# -- 2. batched guidance vs two passes ---------------------------------------------------------
def build_guided_model() -> audiodiff.DiffusionModel:
    """The ``unet1d`` of the guidance comparison with a ``label`` conditioner (global route)."""
    torch.manual_seed(0)
    model = audiodiff.DiffusionModel({
        "representation": dict(MEL), "net": dict(NET), "seconds": SECONDS,
        "conditioning": {"label": {"name": "label", "labels": ["low", "high"]}},
    }).eval()
    randomize_zero_layers(model.net)  # so the conditional and unconditional outputs differ
    return model


def two_pass_denoiser(model: audiodiff.DiffusionModel, cond: dict, uncond: dict, scale: float):
    """Guidance as two forwards of ``B``: the conditional pass, then the unconditional one."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        d_cond = model.denoise(x, sigma, **cond)
        d_uncond = model.denoise(x, sigma, **uncond)
        return d_uncond + scale * (d_cond - d_uncond)

    return denoise


def bench_guidance(settings: Settings) -> tuple[list[list], dict, str]:
    """Rows of the guidance table, the raw timings, and a description of the model."""
    model = build_guided_model()
    frames = model.representation.frames_for(SECONDS)
    generator = torch.Generator().manual_seed(1)
    rows, raw = [], {}
    for batch in GUIDANCE_BATCHES:
        prompts = [("low", "high")[i % 2] for i in range(batch)]
        x = torch.randn(batch, *model.sample_shape(frames), generator=generator)
        sigma = model.schedule.sigmas[500].expand(batch)  # (B,) a mid-range noise level
        with torch.inference_mode():
            cond, uncond = model.guided_inputs(prompts, None)
        batched = inputs_denoiser(model, cond, uncond, GUIDANCE_SCALE)
        separate = two_pass_denoiser(model, cond, uncond, GUIDANCE_SCALE)
        outputs = {}

        def call(name: str, fn) -> Callable[[], None]:
            def run() -> None:
                with torch.inference_mode():
                    outputs[name] = fn(x, sigma)

            return run

        timings = interleaved({"batched": call("batched", batched), "two passes": call("two passes", separate)},
                              settings.guidance_repeats, settings.warmup)
        raw[batch] = timings
        diff = (outputs["batched"] - outputs["two passes"]).abs().max().item()
        scale = outputs["two passes"].abs().max().item()
        one, two = timings["batched"].median, timings["two passes"].median
        rows.append([batch, f"{one * 1e3:.1f}", timings["batched"].spread(), f"{two * 1e3:.1f}",
                     timings["two passes"].spread(), f"{two / one:.2f}x", f"{diff:.2e}", f"{diff / scale:.1e}"])
    shape = "x".join(map(str, model.sample_shape(frames)))
    about = f"`unet1d` channels={NET['channels']}, {model.num_parameters() / 1e6:.2f} M parameters, sample {shape}"
    return rows, raw, about


# -- report ----------------------------------------------------------------------------------
def run(settings: Settings) -> str:
    """Run both benchmarks; return the markdown body (tables and notes)."""
    enc_rows, load_seconds, _ = bench_encoders(settings)
    guide_rows, _, about = bench_guidance(settings)
    parts = [
        "## 1. Prompt encoding: cost per prompt of each conditioner (inference mode)",
        "",
        common.markdown_table(["conditioner", "prompts per call", "median ms/call", "min-max ms/call",
                               "ms per prompt", "vs `label`"], enc_rows),
        "",
        f"Median of {settings.encoder_repeats} calls after {settings.warmup} warm-up, the four interleaved "
        "(rotating which goes first); `vs label` compares calls of the same batch size. Prompts are captions like "
        "\"a dog barking in a hall\" (6-9 words). `label`: an embedding lookup (the captions are its labels). "
        "`tokens`: character-level Transformer, dim 128, 2 layers, 4 heads, cross route. `text`: frozen "
        "all-MiniLM-L6-v2 (bundled) + a learned 384 -> 128 projection, cross route; cold = every call on prompts "
        "it has not seen (the sentence encoder runs), warm = the same prompts again (its embedding cache serves "
        f"them). Loading the sentence encoder on the first call took **{load_seconds:.2f} s** (once per process, "
        "not in the table).",
        "",
        f"## 2. Guidance: one batched forward of 2B vs two forwards of B (scale {GUIDANCE_SCALE:g})",
        "",
        f"{about} (1 s of 8 kHz audio, hop 128, 64 mels), `label` conditioner (global route), mid-range sigma.",
        "",
        common.markdown_table(["batch B", "batched ms/call", "min-max", "two passes ms/call", "min-max",
                               "two passes / batched", "max abs diff", "/ max abs output"], guide_rows),
        "",
        f"Median of {settings.guidance_repeats} guided denoiser calls after {settings.warmup} warm-up, the two "
        "interleaved. batched: `audiodiff.sampling.inputs_denoiser` = `model.paired_inputs(cond, uncond)` + "
        "`guided_denoiser` (one `model.denoise` on `[x; x]`, what `generate()` runs); two passes: `model.denoise` "
        "with the conditional inputs, then with the unconditional ones. Prompt encoding is outside the timed call "
        "(it happens once per generation, not per step). The zero-initialised layers of the untrained net are "
        "re-initialised at random so the two passes differ.",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main("audiodiff conditioning benchmarks", RESULTS, run, Settings(), QUICK, argv,
                                 __doc__.split("\n\n")[0], "fewer repeats; prints only")


if __name__ == "__main__":
    sys.exit(main())
