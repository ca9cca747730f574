"""Tests of audiodiff.data: manifests, prepare functions on real layouts, AudioDataset and collate."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio.io import load_audio
from audiodiff.data import (
    LAYOUTS,
    AudioDataset,
    ManifestItem,
    check_audio,
    collate,
    hash_split,
    midi_to_note_name,
    prepare,
    prepare_berklee,
    prepare_caption_table,
    prepare_esc50,
    prepare_folder_per_label,
    prepare_fsdd,
    prepare_ljspeech,
    prepare_nsynth,
    prepare_salamander,
    read_manifest,
    write_manifest,
)
from audiodiff.errors import ConfigError

SHARED_DATA = Path(
    os.environ.get("AUDIODIFF_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def shared(name: str) -> Path:
    """A folder of the shared real data; skips the test when it is absent."""
    folder = SHARED_DATA / name
    if not (folder / "metadata.csv").is_file():
        pytest.skip(f"shared data not found: {folder}")
    return folder


def tone(path: Path, seconds: float, sample_rate: int = 8000, channels: int = 1, amplitude: float = 0.5) -> Path:
    """Write a 440 Hz sine of ``seconds`` as 16-bit PCM (format from the suffix)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * 440.0 * t)
    data = np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1)  # (T, C)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def item(path: Path, caption: str | None = None, label: str | None = None, split: str = "train") -> ManifestItem:
    """A manifest item with the header values of ``path``."""
    info = sf.info(str(path))
    return ManifestItem(str(path), info.frames / info.samplerate, info.samplerate, caption, label, split)


# ---------------------------------------------------------------------------------------------
# manifest


def test_manifest_round_trip_stores_relative_paths(tmp_path):
    inside = tone(tmp_path / "data" / "a.wav", 0.2)
    outside = tone(tmp_path / "elsewhere" / "b.wav", 0.3)
    items = [item(inside, "a tone", "sine", "train"), item(outside, None, None, "test")]
    manifest = write_manifest(items, tmp_path / "data" / "manifest.jsonl")
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert records[0]["path"] == "a.wav"
    assert records[1]["path"] == str(outside)
    assert read_manifest(manifest) == items
    assert read_manifest(manifest, split="test") == items[1:]
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["a.wav", "manifest.jsonl"]  # no temp file left


def test_manifest_resolves_relative_to_its_folder(tmp_path):
    record = {"path": "x/y.wav", "duration": 1, "sample_rate": 16000, "caption": None, "label": "l", "split": "valid"}
    (tmp_path / "m.jsonl").write_text(json.dumps(record) + "\n\n")
    (loaded,) = read_manifest(tmp_path / "m.jsonl")
    assert loaded.path == str(tmp_path / "x" / "y.wav")
    assert (loaded.duration, loaded.sample_rate, loaded.label, loaded.split) == (1.0, 16000, "l", "valid")


_HEAD = '{"path": "a.wav", "sample_rate": 8000, '


@pytest.mark.parametrize(
    "second_line, message",
    [
        ("{not json", "m.jsonl:2: bad JSON"),
        (_HEAD + '"duration": 1.0, "split": "train"}', "m.jsonl:2: manifest item lacks key(s) caption, label"),
        (_HEAD + '"duration": 1, "caption": null, "label": null, "split": "dev"}', "bad manifest item: unknown split"),
        (_HEAD + '"duration": "x", "caption": null, "label": null, "split": "test"}', "m.jsonl:2: bad manifest item"),
        ("[1, 2]", "m.jsonl:2: manifest line must be a JSON object"),
    ],
)
def test_manifest_errors_name_the_line(tmp_path, second_line, message):
    good = {"path": "a.wav", "duration": 1.0, "sample_rate": 8000, "caption": None, "label": None, "split": "train"}
    (tmp_path / "m.jsonl").write_text(json.dumps(good) + "\n" + second_line + "\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_manifest(tmp_path / "m.jsonl")
    assert "\n" not in str(info.value)


def test_manifest_missing_file_and_bad_split_argument(tmp_path):
    with pytest.raises(ConfigError, match="manifest not found"):
        read_manifest(tmp_path / "none.jsonl")
    write_manifest([], tmp_path / "empty.jsonl")
    with pytest.raises(ConfigError, match="unknown split 'training'"):
        read_manifest(tmp_path / "empty.jsonl", split="training")
    with pytest.raises(ConfigError):
        ManifestItem("a.wav", -1.0, 8000)


# ---------------------------------------------------------------------------------------------
# helpers of prepare


def test_hash_split_is_stable_and_proportional():
    splits = Counter(hash_split(f"clip_{i}.wav", 0.1, 0.1) for i in range(20000))
    assert abs(splits["train"] / 20000 - 0.8) < 0.02
    assert abs(splits["valid"] / 20000 - 0.1) < 0.01 and abs(splits["test"] / 20000 - 0.1) < 0.01
    assert hash_split("anything", 0.0, 0.0) == "train"


def test_hash_split_gives_the_pinned_splits():
    # fixed values: a change of hash or threshold would move clips between splits of every manifest
    keys = ["clip_0.wav", "clip_1.wav", "clip_2.wav", "clip_3.wav", "clip_5.wav", "clip_6.wav", "LJ001-0001", "b"]
    assert [hash_split(k) for k in keys] == ["train", "train", "valid", "train", "valid", "train", "train", "train"]
    assert [hash_split(k, 0.3, 0.3) for k in keys] == ["test", "test", "valid", "train", "valid", "test", "test",
                                                       "train"]


def test_midi_to_note_name():
    assert [midi_to_note_name(p) for p in (21, 27, 48, 60, 69, 70, 108)] == ["A0", "D#1", "C3", "C4", "A4", "A#4", "C8"]


# ---------------------------------------------------------------------------------------------
# prepare functions on small copies of real layouts


def test_prepare_speech_commands_lists(tmp_path):
    tone(tmp_path / "yes" / "aaa_nohash_0.wav", 0.5)
    tone(tmp_path / "yes" / "bbb_nohash_0.wav", 0.5)
    tone(tmp_path / "no" / "ccc_nohash_1.wav", 0.25)
    tone(tmp_path / "_background_noise_" / "white_noise.wav", 1.0)
    (tmp_path / "validation_list.txt").write_text("yes/bbb_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/ccc_nohash_1.wav\n")
    items = prepare_folder_per_label(tmp_path)
    assert [(Path(i.path).name, i.label, i.caption, i.split) for i in items] == [
        ("ccc_nohash_1.wav", "no", "no", "test"),
        ("aaa_nohash_0.wav", "yes", "yes", "train"),
        ("bbb_nohash_0.wav", "yes", "yes", "valid"),
    ]
    assert items[0].duration == pytest.approx(0.25) and items[0].sample_rate == 8000


def test_prepare_folder_per_label_hash_split(tmp_path):
    for digit in ("zero", "one"):
        for n in range(12):
            tone(tmp_path / digit / f"spk{n}_nohash_{digit}.wav", 0.1)
    items = prepare_folder_per_label(tmp_path)
    assert len(items) == 24
    by_speaker = {}
    for i in items:
        by_speaker.setdefault(Path(i.path).name.split("_nohash_")[0], set()).add(i.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())  # one speaker, one split
    assert items == prepare("sc09", tmp_path)


def test_prepare_fsdd_layout(tmp_path, caplog):
    tone(tmp_path / "recordings" / "3_jackson_2.wav", 0.3)
    tone(tmp_path / "recordings" / "3_jackson_7.wav", 0.3)
    tone(tmp_path / "recordings" / "9_theo_30.wav", 0.4)
    tone(tmp_path / "recordings" / "readme.wav", 0.4)
    with caplog.at_level(logging.WARNING):
        items = prepare_fsdd(tmp_path)
    assert "readme.wav" in caplog.text
    assert [(i.label, i.caption, i.split) for i in items] == [
        ("three", "three", "test"),
        ("three", "three", "train"),
        ("nine", "nine", "train"),
    ]
    assert [i.split for i in prepare_fsdd(tmp_path, valid_from_train=True)] == ["test", "valid", "train"]


def test_prepare_caption_table_csv_clotho_style(tmp_path, caplog):
    tone(tmp_path / "audio" / "rain.wav", 0.5)
    tone(tmp_path / "audio" / "dog.wav", 0.5)
    with (tmp_path / "captions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "caption_1", "caption_2", "caption_3", "split"])
        writer.writerow(["rain.wav", "rain on a roof", "heavy rain", "", "validation"])
        writer.writerow(["dog.wav", "a dog barks", "", "", "development"])
        writer.writerow(["missing.wav", "nothing", "", "", "train"])
    with caplog.at_level(logging.WARNING):
        items = prepare_caption_table(tmp_path / "captions.csv", audio_dir=tmp_path / "audio")
    assert "missing.wav" in caplog.text
    assert [(Path(i.path).name, i.caption, i.split) for i in items] == [
        ("rain.wav", "rain on a roof", "valid"),
        ("rain.wav", "heavy rain", "valid"),
        ("dog.wav", "a dog barks", "train"),
    ]


def test_prepare_caption_table_jsonl_and_errors(tmp_path):
    tone(tmp_path / "clips" / "a.wav", 0.2)
    rows = [{"path": "clips/a.wav", "caption": "a beep", "label": "beep"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (only,) = prepare_caption_table(tmp_path / "t.jsonl", default_split="test")
    assert (only.caption, only.label, only.split) == ("a beep", "beep", "test")
    assert only.path == str(tmp_path / "clips" / "a.wav")
    (tmp_path / "nofile.csv").write_text("name,caption\na.wav,x\n")
    with pytest.raises(ConfigError, match="no file column"):
        prepare_caption_table(tmp_path / "nofile.csv")
    (tmp_path / "nocap.csv").write_text("path,text\nclips/a.wav,x\n")
    with pytest.raises(ConfigError, match="no caption column"):
        prepare_caption_table(tmp_path / "nocap.csv")
    (tmp_path / "t.tsv").write_text("filename\tcaption\nclips/a.wav\ta beep\n")
    assert [i.caption for i in prepare_caption_table(tmp_path / "t.tsv")] == ["a beep"]
    (tmp_path / "badsplit.csv").write_text("path,caption,split\nclips/a.wav,x,holdout\n")
    with pytest.raises(ConfigError, match="unknown split 'holdout'"):
        prepare_caption_table(tmp_path / "badsplit.csv")


def test_prepare_ljspeech_layout(tmp_path):
    tone(tmp_path / "wavs" / "LJ001-0001.wav", 0.3, 22050)
    tone(tmp_path / "wavs" / "LJ001-0002.wav", 0.2, 22050)
    (tmp_path / "metadata.csv").write_text(
        "LJ001-0001|Printing, in 1 sense|Printing, in one sense\nLJ001-0002|in being comparatively modern.|\n"
    )
    items = prepare_ljspeech(tmp_path)
    assert [i.caption for i in items] == ["Printing, in one sense", "in being comparatively modern."]
    assert all(i.label is None and i.sample_rate == 22050 for i in items)
    assert [i.split for i in items] == [hash_split("LJ001-0001", 0.01, 0.01), hash_split("LJ001-0002", 0.01, 0.01)]


def test_prepare_nsynth_layout(tmp_path):
    root = tmp_path / "nsynth-valid"
    examples = {
        "bass_synthetic_033-048-050": {"pitch": 48, "velocity": 50, "instrument_family_str": "bass"},
        "organ_electronic_001-069-127": {"pitch": 69, "velocity": 127, "instrument_family_str": "organ"},
    }
    (root / "audio").mkdir(parents=True)
    (root / "examples.json").write_text(json.dumps(examples))
    for note in examples:
        tone(root / "audio" / f"{note}.wav", 0.5, 16000)
    items = prepare_nsynth(root)
    assert [(i.caption, i.label, i.split) for i in items] == [
        ("a bass playing C3", "bass", "valid"),
        ("an organ playing A4", "organ", "valid"),
    ]
    assert [i.caption for i in prepare_nsynth(root, split="test", describe_velocity=True)] == [
        "a bass playing C3 softly",
        "an organ playing A4 loudly",
    ]
    renamed = root.rename(tmp_path / "my_nsynth")
    with pytest.raises(ConfigError, match="split"):
        prepare_nsynth(renamed)
    assert {i.split for i in prepare_nsynth(renamed, split="train")} == {"train"}


def test_prepare_esc50_layout(tmp_path):
    (tmp_path / "meta").mkdir()
    rows = [("1-100-A-0.wav", 1, 20, "crying_baby"), ("4-200-A-1.wav", 4, 0, "dog"), ("5-300-A-2.wav", 5, 1, "rooster")]
    with (tmp_path / "meta" / "esc50.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for name, fold, target, category in rows:
            writer.writerow([name, fold, target, category, "False", name[2:5], "A"])
            tone(tmp_path / "audio" / name, 0.5, 44100)
    items = prepare_esc50(tmp_path)
    assert [(i.label, i.caption, i.split) for i in items] == [
        ("crying_baby", "crying baby", "train"),
        ("dog", "dog", "valid"),
        ("rooster", "rooster", "test"),
    ]


def test_prepare_berklee_and_salamander_layouts(tmp_path):
    berklee = tmp_path / "berklee"
    tone(berklee / "Door_Slam_1.wav", 0.2, 44100)
    tone(berklee / "Door_Slam_2.wav", 0.2, 44100)
    (berklee / "metadata.csv").write_text("path,name\nDoor_Slam_1.wav,door_slam\nDoor_Slam_2.wav,door_slam\n")
    items = prepare_berklee(berklee)
    assert [(i.label, i.caption) for i in items] == [("door_slam", "door slam")] * 2
    (berklee / "metadata.csv").unlink()
    assert [i.label for i in prepare_berklee(berklee)] == ["door_slam"] * 2  # names from the files
    salamander = tmp_path / "salamander"
    for name in ("C4", "Ds4", "A0"):
        tone(salamander / f"{name}.wav", 0.2, 44100)
    items = prepare_salamander(salamander)
    assert [i.label for i in items] == ["A0", "C4", "D#4"]  # sorted by pitch
    assert [i.caption for i in items] == ["a piano playing A0", "a piano playing C4", "a piano playing D#4"]


def test_prepare_dispatch_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset layout 'audioset'; valid layouts: .*fsdd"):
        prepare("audioset", tmp_path)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        prepare("fsdd", tmp_path, colour="red")
    with pytest.raises(ConfigError, match="dataset folder not found"):
        prepare("esc50", tmp_path / "absent")
    with pytest.raises(ConfigError, match="folder_per_label: dataset folder not found"):
        prepare("Folder-Per-Label", tmp_path / "absent")
    with pytest.raises(ConfigError, match="no readable audio"):
        prepare("fsdd", tmp_path)
    expected = {"folder_per_label", "fsdd", "caption_table", "ljspeech", "nsynth", "esc50", "berklee", "salamander"}
    assert expected <= set(LAYOUTS)


# ---------------------------------------------------------------------------------------------
# prepare functions on the real folders in shared/data


def test_prepare_fsdd_real():
    root = shared("fsdd")
    items = prepare_fsdd(root)
    assert len(items) == 3000
    assert Counter(i.split for i in items) == {"train": 2700, "test": 300}
    assert {i.label for i in items} == {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    with (root / "metadata.csv").open() as f:
        expected = {str(root / row["path"]): (float(row["duration_s"]), row["split"]) for row in csv.DictReader(f)}
    for i in items:
        duration, split = expected[i.path]
        assert i.duration == pytest.approx(duration, abs=1e-3) and i.split == split and i.sample_rate == 8000
    carved = Counter(i.split for i in prepare_fsdd(root, valid_from_train=True))
    assert carved == {"train": 2400, "valid": 300, "test": 300}


def test_prepare_berklee_real_and_mp3_decodes():
    root = shared("berklee")
    items = prepare_berklee(root)
    assert len(items) == 1551
    splits = Counter(i.split for i in items)
    assert abs(splits["train"] / 1551 - 0.9) < 0.03 and splits["valid"] > 40 and splits["test"] > 40
    by_name = {Path(i.path).name: i for i in items}
    assert (by_name["Bang_Tin_1.mp3"].label, by_name["Bang_Tin_1.mp3"].caption) == ("bang_tin", "bang tin")
    clip = by_name["Bang_Tin_1.mp3"]
    wave, sr = load_audio(clip.path, sample_rate=16000)
    assert sr == 16000 and wave.shape[0] == 1
    assert wave.shape[1] == pytest.approx(clip.duration * 16000, abs=16)
    assert wave.abs().max() > 0.01


def test_prepare_salamander_real():
    root = shared("salamander")
    items = prepare_salamander(root)
    assert len(items) == 30
    assert Counter(i.split for i in items) == {"train": 24, "valid": 3, "test": 3}
    by_label = {i.label: i for i in items}
    assert by_label["C4"].caption == "a piano playing C4" and Path(by_label["D#1"].path).name == "Ds1.ogg"
    with (root / "metadata.csv").open() as f:
        durations = {str(root / row["path"]): float(row["duration_s"]) for row in csv.DictReader(f)}
    assert all(i.sample_rate == 44100 and i.duration == pytest.approx(durations[i.path], abs=1e-3) for i in items)


# ---------------------------------------------------------------------------------------------
# AudioDataset


def test_dataset_shapes_padding_and_fixed_crops(tmp_path):
    short = item(tone(tmp_path / "short.wav", 0.5, 8000), caption="short")
    long = item(tone(tmp_path / "long.wav", 2.0, 8000, amplitude=0.3), label="long")
    dataset = AudioDataset([short, long], sample_rate=8000, seconds=1.0, crop="start")
    assert len(dataset) == 2 and dataset.summary() == "2 usable clips, skipped 0"
    first = dataset[0]
    assert first["waveform"].shape == (1, 8000) and first["waveform"].dtype == torch.float32
    assert (first["caption"], first["label"], first["index"]) == ("short", "", 0)
    assert first["waveform"][:, 4000:].abs().max() == 0 and first["waveform"][:, :4000].abs().max() > 0.4
    full, _ = load_audio(long.path)
    assert torch.equal(dataset[1]["waveform"], full[:, :8000])
    center = AudioDataset([long], sample_rate=8000, seconds=1.0, crop="center")
    assert torch.equal(center[0]["waveform"], full[:, 4000:12000])
    resampled = AudioDataset([short], sample_rate=16000, seconds=0.75)[0]["waveform"]
    assert resampled.shape == (1, 12000)


def test_dataset_random_crops_are_reproducible(tmp_path):
    long = item(tone(tmp_path / "long.wav", 3.0, 8000))
    items = [long] * 4

    def crops(dataset):
        return [dataset[i]["waveform"] for i in range(len(dataset))]

    a, b = AudioDataset(items, 8000, 0.25, seed=1), AudioDataset(items, 8000, 0.25, seed=1)
    first = crops(a)
    assert all(torch.equal(x, y) for x, y in zip(first, crops(b)))
    assert all(torch.equal(x, y) for x, y in zip(first, crops(a)))  # same epoch, same crops
    assert not all(torch.equal(first[0], x) for x in first[1:])  # indices differ
    a.set_epoch(1)
    assert not all(torch.equal(x, y) for x, y in zip(first, crops(a)))
    c = AudioDataset(items, 8000, 0.25, seed=2)
    assert not all(torch.equal(x, y) for x, y in zip(first, crops(c)))


def test_dataset_stereo_trim_and_loudness(tmp_path):
    stereo = item(tone(tmp_path / "stereo.wav", 0.5, 8000, channels=2))
    assert AudioDataset([stereo], 8000, 0.5, mono=False)[0]["waveform"].shape == (2, 4000)
    padded = np.concatenate([np.zeros(4000), 0.5 * np.sin(np.arange(4000) * 0.3), np.zeros(4000)])
    sf.write(str(tmp_path / "gap.wav"), padded.astype(np.float32), 8000, subtype="FLOAT")
    gap = item(tmp_path / "gap.wav")
    trimmed = AudioDataset([gap], 8000, 1.0, crop="start", trim_silence_db=40)[0]["waveform"]
    assert trimmed[:, :10].abs().max() > 0.1 and trimmed[:, 4000:].abs().max() == 0
    steady = item(tone(tmp_path / "steady.wav", 0.5, 8000, amplitude=0.05))
    loud = AudioDataset([steady], 8000, 0.5, loudness_normalize=-20.0)[0]["waveform"]
    assert 20 * math.log10(float(loud.pow(2).mean().sqrt())) == pytest.approx(-20.0, abs=0.1)
    limited = AudioDataset([steady], 8000, 0.5, loudness_normalize=-1.0)[0]["waveform"]
    assert float(limited.abs().max()) == pytest.approx(1.0, abs=1e-4)  # the peak limit stops the gain


def test_dataset_skips_bad_files_by_reason(tmp_path, caplog):
    good = [tone(tmp_path / "good1.wav", 0.5), tone(tmp_path / "good2.wav", 0.3)]
    whole = tone(tmp_path / "whole.wav", 1.0).read_bytes()
    (tmp_path / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n")
    tiny = tone(tmp_path / "tiny.wav", 0.01)
    bad = [tmp_path / name for name in ("truncated.wav", "zero.wav", "text.wav")] + [tiny]
    items = [ManifestItem(str(p), 1.0, 8000) for p in good + bad]
    with caplog.at_level(logging.WARNING, logger="audiodiff.data"):
        dataset = AudioDataset(items, 8000, 0.5)
    assert [Path(i.path).name for i in dataset.items] == ["good1.wav", "good2.wav"]
    assert dataset.skipped == {"truncated": 1, "empty": 1, "unreadable": 1, "too short": 1}
    assert dataset.summary() == "2 usable clips, skipped 4 (1 empty, 1 too short, 1 truncated, 1 unreadable)"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 4
    assert check_audio(tmp_path / "absent.wav") == "missing"
    assert dataset[1]["waveform"].shape == (1, 4000)


def test_dataset_all_bad_raises(tmp_path):
    (tmp_path / "text.wav").write_text("not audio")
    items = [ManifestItem(str(tmp_path / "text.wav"), 1.0, 8000), ManifestItem(str(tmp_path / "gone.wav"), 1.0, 8000)]
    expected = r"no usable audio in manifest .*: 0 usable clips, skipped 2 \(1 missing, 1 unreadable\)"
    with pytest.raises(ConfigError, match=expected):
        AudioDataset(items, 8000, 1.0)


def test_dataset_arguments_and_unchecked_mode(tmp_path):
    clip = item(tone(tmp_path / "a.wav", 0.5))
    for kwargs in ({"crop": "middle"}, {"seconds": 0.0}, {"trim_silence_db": -10}, {"loudness_normalize": 3.0}):
        with pytest.raises(ConfigError):
            AudioDataset([clip], **{"sample_rate": 8000, "seconds": 1.0, **kwargs})
    short = ManifestItem(str(tmp_path / "absent.wav"), 0.01, 8000)
    dataset = AudioDataset([clip, short], 8000, 1.0, check_files=False)
    assert len(dataset) == 1 and dataset.skipped == {"too short": 1}


def test_collate_and_dataloader_from_manifest(tmp_path):
    clips = [item(tone(tmp_path / f"{n}.wav", 0.2 + 0.1 * n), caption=f"c{n}", label=f"l{n}") for n in range(3)]
    manifest = write_manifest(clips, tmp_path / "m.jsonl")
    dataset = AudioDataset.from_manifest(manifest, sample_rate=8000, seconds=0.25, crop="start")
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["waveform"].shape == (2, 1, 2000)
    assert batch["caption"] == ["c0", "c1"] and batch["label"] == ["l0", "l1"]
    assert batch["index"].tolist() == [0, 1]
    with pytest.raises(ConfigError, match="cannot stack"):
        collate([{**dataset[0], "waveform": torch.zeros(2, 2000)}, dataset[1]])


def test_dataset_scans_real_fsdd_quickly():
    items = [i for i in prepare_fsdd(shared("fsdd")) if i.split == "train"]
    start = time.perf_counter()
    dataset = AudioDataset(items, sample_rate=16000, seconds=1.0)
    elapsed = time.perf_counter() - start
    assert len(dataset) == 2700 and dataset.skipped == {}
    assert elapsed < 20.0, f"scanning 2700 FSDD files took {elapsed:.1f} s"
    batch = collate([dataset[i] for i in range(4)])
    assert batch["waveform"].shape == (4, 1, 16000) and batch["caption"][0] in batch["label"]


def test_feature_cache_matches_on_the_fly_and_is_reused(tmp_path):
    import soundfile as sf

    from audiodiff import DiffusionModel
    from audiodiff.data import AudioDataset, FeatureCache, ManifestItem, collate
    from conftest import tiny_config

    items = []
    for i in range(4):
        path = tmp_path / f"{i}.wav"
        sf.write(str(path), (0.3 * torch.sin(torch.arange(6000) * (0.05 + 0.01 * i))).numpy(), 8000)
        items.append(ManifestItem(path=str(path), duration=0.75, sample_rate=8000, label=str(i)))
    model = DiffusionModel(tiny_config())
    data = AudioDataset(items, sample_rate=8000, seconds=0.5, crop="start")
    cache = FeatureCache(data, model.representation, tmp_path / "cache")
    batch = collate([cache[i] for i in range(4)])
    direct = model.encode(collate([data[i] for i in range(4)])["waveform"])
    assert torch.allclose(model.encode_batch(batch), direct, atol=1e-5)
    assert len(list(cache.folder.glob("*.safetensors"))) == 4
    again = FeatureCache(data, model.representation, tmp_path / "cache")
    assert torch.equal(again[2]["features"], batch["features"][2]) and again[2]["label"] == "2"
    other = AudioDataset(items, sample_rate=8000, seconds=0.25, crop="start")
    assert FeatureCache(other, model.representation, tmp_path / "cache").folder != cache.folder
    with pytest.raises(ConfigError, match="deterministic crop"):
        FeatureCache(AudioDataset(items, sample_rate=8000, seconds=0.5), model.representation, tmp_path / "c")
