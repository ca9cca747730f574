"""LoRA adapters: exact save/load/merge, strength 0 is the base model, stacking, new labels, bad folders."""

from __future__ import annotations

import json

import pytest
import torch

from audiodiff import DiffusionModel
from audiodiff.errors import AdapterError, AudiodiffError
from audiodiff.lora import (
    add_labels,
    add_lora,
    apply_adapters,
    load_adapter,
    merge,
    parse_spec,
    save_adapter,
    set_strength,
    target_names,
    weights_checksum,
)
from conftest import perturb, tiny_config

LABELS = {"prompt": {"name": "label", "labels": ["a", "b"], "dim": 8}}


def _model(seed: int = 0) -> DiffusionModel:
    torch.manual_seed(seed)
    return perturb(DiffusionModel(tiny_config(conditioning=LABELS)), seed).eval()


def _output(model: DiffusionModel, prompt: str = "a") -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, *model.sample_shape(8), generator=g)
    with torch.no_grad():
        return model.denoise(x, torch.tensor([0.5, 2.0]), **model.encode_prompts([prompt, prompt]))


def _trained_adapter(model: DiffusionModel, folder, seed: int = 3, adapter: str = "adapter", labels=()) -> None:
    """Attach an adapter with random (non-zero) weights and save it."""
    add_lora(model, rank=2, adapter=adapter)
    if labels:
        add_labels(model, "prompt", labels, adapter=adapter)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    save_adapter(model, folder, adapter)


def test_targets_cover_convolutions_linears_and_attention():
    names = target_names(_model())
    assert any(n.endswith(".qkv") for n in names) and any(n.endswith(".proj") for n in names)
    assert any("conv" in n for n in names) and "net.embedding.cond_proj" in names


def test_fresh_adapter_changes_nothing_and_trains_only_itself():
    model = _model()
    before = _output(model)
    add_lora(model, rank=4)
    assert torch.equal(_output(model), before)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".down", ".up")) for n in trainable)


def test_save_load_merge_exact(tmp_path):
    model = _model()
    _trained_adapter(model, tmp_path / "ad")
    adapted = _output(model)
    fresh = _model()
    assert not torch.allclose(_output(fresh), adapted)
    load_adapter(fresh, tmp_path / "ad")
    torch.testing.assert_close(_output(fresh), adapted, rtol=0, atol=1e-6)
    merged = merge(fresh)
    torch.testing.assert_close(_output(merged), adapted, rtol=0, atol=1e-5)
    assert not any("parametrizations" in k for k in merged.state_dict())
    merged.save(tmp_path / "merged")
    again = DiffusionModel.from_folder(tmp_path / "merged")
    torch.testing.assert_close(_output(again), adapted, rtol=0, atol=1e-5)
    assert again.config["adapters"] == [{"name": "ad", "strength": 1.0}]


def test_strength_zero_is_the_base_and_strengths_scale(tmp_path):
    _trained_adapter(_model(), tmp_path / "ad")
    base = _output(_model())
    model = _model()
    name = load_adapter(model, tmp_path / "ad", strength=0.0)
    assert torch.equal(_output(model), base)
    set_strength(model, name, 1.0)
    full = _output(model)
    set_strength(model, name, 0.5)
    half = merge(model)
    weight = half.net.input_conv.weight
    base_weight = _model().net.input_conv.weight
    merged_full = merge(_with(tmp_path / "ad")).net.input_conv.weight
    torch.testing.assert_close(weight - base_weight, 0.5 * (merged_full - base_weight), rtol=0, atol=1e-6)
    assert not torch.allclose(full, base)


def _with(*specs) -> DiffusionModel:
    model = _model()
    apply_adapters(model, specs)
    return model


def test_two_adapters_stack(tmp_path):
    _trained_adapter(_model(), tmp_path / "one", seed=3)
    _trained_adapter(_model(), tmp_path / "two", seed=4)
    base = _model().net.input_conv.weight
    one = merge(_with(tmp_path / "one")).net.input_conv.weight - base
    two = merge(_with(tmp_path / "two")).net.input_conv.weight - base
    both = _with(tmp_path / "one", f"{tmp_path / 'two'}:0.5")
    torch.testing.assert_close(merge(both).net.input_conv.weight, base + one + 0.5 * two, rtol=0, atol=1e-6)
    assert _output(both).isfinite().all()


def test_new_labels_travel_with_the_adapter(tmp_path):
    model = _model()
    _trained_adapter(model, tmp_path / "ad", labels=["c"])
    assert model.conditioners["prompt"].labels == ["a", "b", "c"]
    expected = _output(model, "c")
    fresh = _with(tmp_path / "ad")
    torch.testing.assert_close(_output(fresh, "c"), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(_output(merge(fresh), "c"), expected, rtol=0, atol=1e-5)
    assert merge(fresh).config["conditioning"]["prompt"]["labels"] == ["a", "b", "c"]
    config = json.loads((tmp_path / "ad" / "config.json").read_text())
    assert config["new_labels"] == {"prompt": ["c"]}


def test_adapter_for_another_model_is_refused(tmp_path):
    _trained_adapter(_model(seed=0), tmp_path / "ad")
    other = _model(seed=1)
    with pytest.raises(AdapterError, match="made for model"):
        load_adapter(other, tmp_path / "ad")
    assert issubclass(AdapterError, AudiodiffError)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "config", "kind", "missing"])
def test_corrupt_adapter_is_one_line_error(tmp_path, damage):
    _trained_adapter(_model(), tmp_path / "ad")
    weights, config = tmp_path / "ad" / "adapter.safetensors", tmp_path / "ad" / "config.json"
    if damage == "garbage":
        weights.write_bytes(b"not a safetensors file")
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:200])
    elif damage == "config":
        config.write_text("{")
    elif damage == "kind":
        config.write_text(json.dumps({**json.loads(config.read_text()), "kind": "model"}))
    else:
        weights.unlink()
    with pytest.raises(AdapterError) as info:
        load_adapter(_model(), tmp_path / "ad")
    assert "\n" not in str(info.value)


def test_checksum_survives_fp16_save(tmp_path):
    model = _model()
    model.save(tmp_path / "m", dtype=torch.float16)
    a = DiffusionModel.from_folder(tmp_path / "m")
    b = DiffusionModel.from_folder(tmp_path / "m")
    assert weights_checksum(a) == weights_checksum(b) != weights_checksum(_model(seed=1))


def test_parse_spec():
    assert parse_spec("runs/ad") == (parse_spec("runs/ad")[0], 1.0)
    path, strength = parse_spec("runs/ad:0.25")
    assert str(path) == "runs/ad" and strength == 0.25
    assert parse_spec("C:/x/ad")[1] == 1.0
