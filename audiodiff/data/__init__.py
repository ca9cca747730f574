"""Datasets of real audio: JSONL manifests, ``prepare_*`` functions for real dataset layouts, and
:class:`AudioDataset`, which turns manifest items into fixed-length waveform clips.

Typical use::

    from audiodiff.data import prepare, write_manifest, AudioDataset, collate

    write_manifest(prepare("fsdd", "data/fsdd"), "data/fsdd.jsonl")
    dataset = AudioDataset.from_manifest("data/fsdd.jsonl", split="train", sample_rate=16000, seconds=1.0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, collate_fn=collate)
"""

from .cache import FeatureCache
from .dataset import AudioDataset, check_audio, collate, crop_or_pad, normalize_loudness, trim_silence
from .manifest import SPLITS, ManifestItem, hash_split, read_manifest, write_manifest
from .debian_sfx import prepare_debian_sfx
from .notes import midi_to_note_name, note_name_to_midi
from .prepare import (
    LAYOUTS,
    prepare,
    prepare_berklee,
    prepare_caption_table,
    prepare_esc50,
    prepare_folder_per_label,
    prepare_fsdd,
    prepare_ljspeech,
    prepare_nsynth,
    prepare_salamander,
)

__all__ = [
    "AudioDataset",
    "FeatureCache",
    "LAYOUTS",
    "ManifestItem",
    "SPLITS",
    "check_audio",
    "collate",
    "crop_or_pad",
    "hash_split",
    "midi_to_note_name",
    "note_name_to_midi",
    "normalize_loudness",
    "prepare",
    "prepare_berklee",
    "prepare_caption_table",
    "prepare_debian_sfx",
    "prepare_esc50",
    "prepare_folder_per_label",
    "prepare_fsdd",
    "prepare_ljspeech",
    "prepare_nsynth",
    "prepare_salamander",
    "read_manifest",
    "trim_silence",
    "write_manifest",
]
