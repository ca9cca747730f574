"""Conditioners (conformance over the registry), routing, guidance and prompts end to end."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import perturb, tiny_config

import audiodiff
from audiodiff import DiffusionModel, registry
from audiodiff.cli import main
from audiodiff.conditioning import Cond, concat_net_inputs, keep_mask, net_inputs
from audiodiff.errors import ConfigError
from audiodiff.sampling import conditioned_denoiser

CONDITIONER_CONFIGS = {
    "label": {"name": "label", "labels": ["low", "high"], "dim": 16},
    "tokens": {"name": "tokens", "dim": 16, "layers": 1, "heads": 2, "examples": ["a dog barks"]},
    "text": {"name": "text", "dim": 16},
}


def conditioner_config(name: str, route: str | None = None) -> dict:
    cfg = dict(CONDITIONER_CONFIGS.get(name, {"name": name}))
    if route:
        cfg["route"] = route
    return cfg


def prompts_for(name: str) -> list[str]:
    return ["low", "high", ""] if name == "label" else ["a dog barks", "rain on a window", ""]


@pytest.mark.parametrize("name", registry.names("conditioner"))
@pytest.mark.parametrize("route", ["global", "cross", "both"])
def test_conditioner_conformance(name, route):
    c = registry.build("conditioner", conditioner_config(name, route))
    out = c(prompts_for(name))
    assert isinstance(out, Cond) and out.emb.shape[0] == 3 and out.emb.shape[-1] == c.dim
    assert torch.isfinite(out.emb).all()
    if out.is_sequence:
        assert out.mask is None or out.mask.shape == out.emb.shape[:2]
    again = registry.build("conditioner", c.config())
    again.load_state_dict(c.state_dict())
    assert torch.allclose(again(prompts_for(name)).emb, out.emb, atol=1e-6)
    one = c(prompts_for(name)[:1])  # batch consistency
    assert torch.allclose(one.emb[0, : one.emb.shape[1]] if one.is_sequence else one.emb[0],
                          out.emb[0, : one.emb.shape[1]] if out.is_sequence else out.emb[0], atol=1e-5)
    null_a, null_b = c([""]), c(["", ""])
    assert torch.allclose(null_a.emb[0], null_b.emb[1], atol=1e-6), "the null condition is one learned embedding"


def test_label_errors_name_the_known_labels():
    c = registry.build("conditioner", conditioner_config("label"))
    with pytest.raises(ConfigError, match="unknown label.*'medium'.*knows: low, high"):
        c(["medium"])


def test_text_conditioner_uses_bundled_model_and_caches():
    c = registry.build("conditioner", {"name": "text", "route": "cross"})
    assert "_encoder" not in dict(c.named_modules()) and set(c.state_dict()) == {"null"}
    a = c(["a dog barks", "a dog barks"])
    assert a.emb.shape[-1] == 384 and torch.equal(a.emb[0], a.emb[1])
    assert len(c._cache) == 1
    # paraphrases are closer than unrelated text
    s = registry.build("conditioner", {"name": "text", "route": "global"})
    e = torch.nn.functional.normalize(s(["a dog is barking", "a dog barks", "piano chord"]).emb, dim=-1)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_text_cache_file_serves_prompts_without_the_encoder(tmp_path):
    c = registry.build("conditioner", {"name": "text", "route": "cross"})
    expected = c(["door slam", "kalimba"]).emb
    c.save_cache(tmp_path / "cache.safetensors")
    fresh = registry.build("conditioner", {"name": "text", "route": "cross"})
    assert fresh.load_cache(tmp_path / "cache.safetensors") == 2
    assert torch.equal(fresh(["door slam", "kalimba"]).emb, expected)
    assert fresh.__dict__["_encoder"] is None, "the encoder was never loaded"
    other = registry.build("conditioner", {"name": "text", "model": "some/other-model"})
    with pytest.raises(ConfigError, match="was made with"):
        other.load_cache(tmp_path / "cache.safetensors")
    (tmp_path / "bad.safetensors").write_text("not a tensor file")
    with pytest.raises(ConfigError, match="cannot read text cache"):
        fresh.load_cache(tmp_path / "bad.safetensors")


def test_routing_and_concatenation():
    g1, g2 = Cond(torch.randn(2, 3)), Cond(torch.randn(2, 5))
    s1 = Cond(torch.randn(2, 4, 6), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool))
    out = net_inputs([(g1, "global"), (g2, "global"), (s1, "cross")])
    assert out["cond"].shape == (2, 8) and out["context"].shape == (2, 4, 6)
    other = net_inputs([(g1, "global"), (g2, "global"), (Cond(torch.randn(2, 1, 6)), "cross")])
    both = concat_net_inputs(out, other)
    assert both["context"].shape == (4, 4, 6) and both["context_mask"][2:, 1:].sum() == 0
    # route "both": the sequence for cross-attention and its masked mean as the global vector
    routed = net_inputs([(s1, "both")])
    assert torch.equal(routed["context"], s1.emb) and torch.equal(routed["context_mask"], s1.mask)
    assert torch.allclose(routed["cond"], torch.stack([s1.emb[0, :2].mean(0), s1.emb[1].mean(0)]))
    vector = net_inputs([(g1, "both")])
    assert torch.equal(vector["cond"], g1.emb) and vector["context"].shape == (2, 1, 3)


def test_keep_mask_rate():
    keep = keep_mask(10000, 0.1, torch.Generator().manual_seed(0))
    assert 0.08 < 1 - sum(keep) / 10000 < 0.12


def conditional_model(kind: str = "tokens", net: str = "unet1d", route: str = "cross", **extra) -> DiffusionModel:
    torch.manual_seed(0)
    cfg = tiny_config(net, conditioning={"prompt": conditioner_config(kind, route)}, **extra)
    return perturb(DiffusionModel(cfg)).eval()


@pytest.mark.parametrize("net", ["unet1d", "unet2d"])
@pytest.mark.parametrize("kind,route", [("label", "global"), ("tokens", "cross"), ("tokens", "global"), ("tokens", "both")])
def test_guidance_scale_one_is_conditional_zero_is_unconditional(net, kind, route):
    model = conditional_model(kind, net, route)
    prompts = ["high", "low"] if kind == "label" else ["a dog barks", "wind"]
    x, sigma = torch.randn(2, *model.sample_shape(10)) * 3, torch.tensor([3.0, 3.0])
    with torch.no_grad():
        cond = model.denoise(x, sigma, **model.encode_prompts(prompts))
        uncond = model.denoise(x, sigma, **model.encode_prompts(["", ""]))
        paired = model.paired_inputs(*model.guided_inputs(prompts, None))
        from audiodiff.diffusion.guidance import guided_denoiser

        one = guided_denoiser(lambda a, b: model.denoise(a, b, **paired), 1.0)(x, sigma)
        zero = guided_denoiser(lambda a, b: model.denoise(a, b, **paired), 0.0)(x, sigma)
        three = conditioned_denoiser(model, prompts, None, 3.0)(x, sigma)
    assert not torch.allclose(cond, uncond, atol=1e-3), "the condition must matter"
    assert torch.allclose(one, cond, atol=1e-5) and torch.allclose(zero, uncond, atol=1e-5)
    assert torch.allclose(three, uncond + 3 * (cond - uncond), atol=1e-4)


def test_save_load_conditional_models(tmp_path):
    for kind, route in [("label", "global"), ("tokens", "cross"), ("text", "cross")]:
        model = conditional_model(kind, route=route)
        folder = model.save(tmp_path / kind)
        config = json.loads((folder / "config.json").read_text())
        assert config["conditioning"]["prompt"]["name"] == kind
        loaded = audiodiff.load(folder)
        prompts = ["low", "high"] if kind == "label" else ["a dog", "rain"]
        x, sigma = torch.randn(2, *model.sample_shape(6)), torch.tensor([1.0, 2.0])
        with torch.no_grad():
            assert torch.equal(model.denoise(x, sigma, **model.encode_prompts(prompts)),
                               loaded.denoise(x, sigma, **loaded.encode_prompts(prompts)))


def test_generate_with_prompts_and_errors(tmp_path):
    model = conditional_model("label", route="global")
    clips = audiodiff.generate(model, prompt=["low", "high"], num_samples=2, steps=2, seed=3, guidance_scale=2.0,
                               negative_prompt="low")
    assert [c.metadata["prompt"] for c in clips] == ["low", "low", "high", "high"]
    assert clips[0].metadata["guidance_scale"] == 2.0 and clips[0].metadata["negative_prompt"] == "low"
    unconditional = audiodiff.generate(model, steps=2, seed=3)  # trained with dropout: may run without prompt
    assert unconditional[0].metadata["prompt"] == ""
    with pytest.raises(ConfigError, match="unknown label"):
        audiodiff.generate(model, prompt="medium", steps=2)
    with pytest.raises(ConfigError, match="unconditional: it takes no prompt"):
        audiodiff.generate(DiffusionModel(tiny_config()), prompt="a dog", steps=2)
    strict = conditional_model("label", route="global", cond_dropout=0.0)
    with pytest.raises(ConfigError, match="needs a prompt"):
        audiodiff.generate(strict, steps=2)
    with pytest.raises(ConfigError, match="2 negative prompts for 1 prompts"):
        audiodiff.generate(model, prompt="low", negative_prompt=["a", "b"], steps=2)


def test_cli_prompts(tmp_path, capsys):
    folder = conditional_model("label", route="global").save(tmp_path / "m")
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("high\n\nlow\n")
    rc = main(["generate", "--model", str(folder), "--out", str(tmp_path / "o"), "--prompt", "low",
               "--prompts-file", str(prompts_file), "--guidance-scale", "2", "--steps", "2", "--quiet"])
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "o").glob("*.wav"))
    assert names == ["clip_000_low_seed" + names[0].split("seed")[1], *names[1:]] and len(names) == 3
    meta = json.loads((tmp_path / "o" / names[1].replace(".wav", ".json")).read_text())
    assert meta["prompt"] == "high" and meta["guidance_scale"] == 2.0
    assert main(["generate", "--model", str(folder), "--out", str(tmp_path / "o"), "--prompt", "zzz", "--quiet"]) == 2
    assert "unknown label" in capsys.readouterr().err
    unconditional = DiffusionModel(tiny_config()).save(tmp_path / "u")
    assert main(["generate", "--model", str(unconditional), "--prompt", "x", "--quiet", "--out", str(tmp_path)]) == 2
    assert main(["generate", "--model", str(folder), "--prompts-file", str(tmp_path / "none.txt"), "--quiet"]) == 2


def test_training_with_conditioning_runs(tmp_path):
    from train_helpers import ToneDataset

    from audiodiff.training import TrainConfig, fit

    model = DiffusionModel(tiny_config(conditioning={"p": {"name": "tokens", "dim": 16, "layers": 1, "heads": 2}}))
    before = model.conditioners["p"].embed.weight.clone()
    fit(model, ToneDataset(n=8), tmp_path, TrainConfig(steps=3, batch_size=4, num_workers=0, progress=False,
                                                       warmup_steps=1, fit_stats_batches=1, lr=1e-2))
    assert not torch.equal(before, model.conditioners["p"].embed.weight), "conditioners are trained"
