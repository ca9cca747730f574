"""Tests of audiodiff.data.debian_sfx: captions from file names, splits by caption and package, skipping, fetching."""

from __future__ import annotations

import csv
import shutil
import stat
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodiff.data import LAYOUTS, prepare, prepare_debian_sfx
from audiodiff.data import debian_sfx
from audiodiff.data.debian_sfx import PACKAGES, caption_from_name, fetch
from audiodiff.errors import AudiodiffError, ConfigError, DownloadError

WESNOTH = "usr/share/games/wesnoth/1.16/data/core/sounds"
MINETEST = "usr/share/games/minetest/games/minetest_game/mods"
FREECIV = "usr/share/games/freeciv/stdsounds"


def clip(path: Path, seconds: float = 0.3, rate: int = 16000, amplitude: float = 0.5) -> Path:
    """A short sine (``amplitude`` 0: silence) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return path


@pytest.fixture()
def sounds(tmp_path: Path) -> Path:
    """Three fake unpacked packages: Wesnoth (with a long, a silent and a broken file), Minetest, Freeciv."""
    root = tmp_path / "debian-sfx"
    for name in ("orc-hit-1.wav", "orc-hit-2.wav", "wolf-growl-1.wav", "bow-puny-fire-miss.wav", "explosion.wav",
                 "sword-1.wav", "claws.wav", "heal.wav", "net.wav", "spear.wav"):
        clip(root / "wesnoth-1.16-data" / WESNOTH / name)
    clip(root / "wesnoth-1.16-data" / WESNOTH / "ambient" / "night.wav", seconds=7.0, rate=8000)
    clip(root / "wesnoth-1.16-data" / WESNOTH / "fuse.wav", amplitude=0.0)
    (root / "wesnoth-1.16-data" / WESNOTH / "broken.ogg").write_bytes(b"OggS not really")
    for name in ("default/sounds/default_dig_choppy.1.ogg", "default/sounds/default_grass_footstep.2.ogg",
                 "tnt/sounds/tnt_explode.ogg", "doors/sounds/doors_door_open.ogg"):
        clip((root / "minetest-data" / MINETEST / name).with_suffix(".wav"))
    for name in ("SmlExpl.wav", "MgBar1.wav", "explosion.wav"):
        clip(root / "freeciv-data" / FREECIV / name)
    (root / "freeciv-data" / "copyright").write_text("Files: *\nLicense: GPL-2+\n")
    return root


USED = ("wesnoth-1.16-data", "minetest-data", "freeciv-data")


@pytest.mark.parametrize("name, package, caption", [
    ("bow-puny-fire-miss.ogg", "wesnoth-1.16-data", "bow puny fire miss"),
    ("orc-small-hit-3.ogg", "wesnoth-1.16-data", "orc small hit"),
    ("CoalMine2.wav", "lincity-ng-data", "coal mine"),
    ("TraficHigh1.wav", "lincity-ng-data", "heavy traffic"),
    ("SmlExpl.ogg", "freeciv-data", "small explosion"),  # camelCase and abbreviations
    ("MgBar2.ogg", "freeciv-data", "machine gun burst"),  # a code: the package's table
    ("default_dig_choppy.2.ogg", "minetest-data", "chopping wood"),
    ("default_grass_footstep.1.ogg", "minetest-data", "grass footstep"),  # prefix dropped
    ("doors_steel_door_open.ogg", "minetest-data", "steel door open"),
    ("camera-shutter.oga", "sound-theme-freedesktop", "camera shutter"),
])
def test_caption_from_name(name, package, caption):
    spec = PACKAGES[package]
    assert caption_from_name(name, spec.prefixes, dict(spec.names)) == caption


def test_caption_from_name_generic():
    assert caption_from_name("sfx_DoorSlam_03.WAV") == "door slam"
    assert caption_from_name("HTTPRequest-ok.flac") == "http request ok"
    assert caption_from_name("12.wav") == "12"  # nothing but a number: keep it rather than an empty caption


def test_licence_by_path():
    minetest = PACKAGES["minetest-data"]
    assert minetest.licence_of(f"{MINETEST}/default/sounds/default_dig_choppy.1.ogg") == "CC-BY-SA-3.0"
    assert minetest.licence_of(f"{MINETEST}/doors/sounds/doors_door_open.ogg") == "CC-BY-3.0"
    assert minetest.licence_of(f"{MINETEST}/doors/sounds/doors_glass_door_open.ogg") == "CC0-1.0"
    assert minetest.licence_of(f"{MINETEST}/tnt/sounds/tnt_explode.ogg") == "CC0-1.0"


def test_prepare_skips_and_splits(sounds, caplog):
    caplog.set_level("INFO", logger="audiodiff.data.debian_sfx")
    items = prepare_debian_sfx(sounds, packages=USED, valid_fraction=0.2, test_fraction=0.2, fetch_missing=False)
    names = {Path(i.path).name for i in items}
    assert not names & {"night.wav", "fuse.wav", "broken.ogg"}  # too long, silent, undecodable
    assert "skipped 1 silent, 1 too long, 1 undecodable" in caplog.text
    assert len(items) == 10 + 4 + 3
    assert all(i.label == i.caption and i.duration == pytest.approx(0.3) and i.sample_rate == 16000 for i in items)
    by_package = {p: Counter(i.split for i in items if f"/{p}/" in i.path) for p in USED}
    assert by_package["minetest-data"] == {"test": 4}  # the held-out package: test only
    held_out = {i.caption for i in items if i.split != "train"}
    assert held_out and not held_out & {i.caption for i in items if i.split == "train"}  # no caption in both
    freeciv = {i.caption for i in items if "/freeciv-data/" in i.path}
    assert freeciv == {"small explosion", "machine gun burst", "explosion"}
    assert prepare_debian_sfx(sounds, packages=USED, valid_fraction=0.2, test_fraction=0.2,
                              fetch_missing=False) == items  # deterministic


def test_prepare_caption_shared_with_held_out_is_test(sounds):
    clip(sounds / "wesnoth-1.16-data" / WESNOTH / "grass-footstep.wav")  # the caption of a Minetest clip
    items = prepare_debian_sfx(sounds, packages=USED, fetch_missing=False)
    assert {i.split for i in items if i.caption == "grass footstep"} == {"test"}
    everything_held_out = prepare_debian_sfx(sounds, packages=USED, held_out=USED, fetch_missing=False)
    assert {i.split for i in everything_held_out} == {"test"}


def test_prepare_writes_metadata(sounds):
    prepare_debian_sfx(sounds, packages=USED, fetch_missing=False)
    with (sounds / "metadata.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 + 4 + 3
    rows = {Path(row["path"]).name: row for row in rows}
    assert rows["tnt_explode.wav"]["licence"] == "CC0-1.0" and rows["tnt_explode.wav"]["split"] == "test"
    assert rows["MgBar1.wav"]["licence"] == "GPL-2+" and rows["MgBar1.wav"]["package"] == "freeciv-data"
    assert rows["night.wav"]["skipped"] == "too long" and rows["night.wav"]["split"] == ""


def test_prepare_dispatch_and_errors(sounds, tmp_path):
    assert "debian_sfx" in LAYOUTS
    assert len(prepare("debian-sfx", sounds, packages=["freeciv-data"], fetch_missing=False)) == 3
    with pytest.raises(ConfigError, match="unknown package.*no-such-data"):
        prepare_debian_sfx(sounds, packages=["no-such-data"])
    with pytest.raises(ConfigError, match="lacks the package folder.*lincity-ng-data"):
        prepare_debian_sfx(sounds, packages=["lincity-ng-data"], fetch_missing=False)


def test_fetch_without_apt_get_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(debian_sfx.shutil, "which", lambda tool: None)
    with pytest.raises(DownloadError, match="apt-get, dpkg-deb not found.*by hand") as caught:
        prepare_debian_sfx(tmp_path / "absent", packages=["freeciv-data"])
    assert isinstance(caught.value, AudiodiffError) and "\n" not in str(caught.value)
    assert fetch(tmp_path, packages=[]) == []  # nothing missing: no tools needed


def fake_tool(folder: Path, name: str, script: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_fetch_failure_is_one_line_error(tmp_path, monkeypatch):
    script = "echo 'W: some warning' >&2\necho \"E: Unable to locate package $2\" >&2\nexit 100\n"
    apt_get = fake_tool(tmp_path, "apt-get", script)
    monkeypatch.setattr(debian_sfx.shutil, "which", lambda tool: apt_get if tool == "apt-get" else "/bin/true")
    with pytest.raises(DownloadError) as caught:
        fetch(tmp_path / "root", packages=["freeciv-data"])
    message = str(caught.value)
    assert message == ("debian_sfx: apt-get download freeciv-data failed (offline? or run apt-get update): "
                       "E: Unable to locate package freeciv-data")
    assert not [p for p in (tmp_path / "root").iterdir()]  # the temporary folder is gone


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_unpacks_a_package(tmp_path, monkeypatch):
    """The whole fetch on a .deb built here: a fake apt-get puts it in place, the real dpkg-deb unpacks it."""
    build = tmp_path / "build"
    clip(build / FREECIV / "SmlExpl.wav")
    (build / "usr/share/doc/freeciv-data").mkdir(parents=True)
    (build / "usr/share/doc/freeciv-data/copyright").write_text("Files: *\nLicense: GPL-2+\n")
    (build / "usr/share/games/freeciv/other.txt").write_text("not kept")
    (build / "DEBIAN").mkdir()
    (build / "DEBIAN/control").write_text("Package: freeciv-data\nVersion: 9.9-1\nArchitecture: all\n"
                                          "Maintainer: test <t@example.org>\nDescription: test\n")
    deb = tmp_path / "freeciv-data_9.9-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(build), str(deb)], check=True, capture_output=True)
    apt_get = fake_tool(tmp_path, "apt-get", f"cp {deb} .\n")
    real = shutil.which
    monkeypatch.setattr(debian_sfx.shutil, "which", lambda tool: apt_get if tool == "apt-get" else real(tool))
    root = tmp_path / "root"
    assert fetch(root, packages=["freeciv-data"]) == ["freeciv-data"]
    assert (root / "freeciv-data" / "copyright").is_file()
    assert not (root / "freeciv-data/usr/share/games/freeciv/other.txt").exists()  # only the sound folders are kept
    assert '"version": "9.9-1"' in (root / "freeciv-data" / "package.json").read_text()
    items = prepare_debian_sfx(root, packages=["freeciv-data"])  # present now: no second fetch
    assert [i.caption for i in items] == ["small explosion"]
    assert "9.9-1" in (root / "metadata.csv").read_text()


@pytest.mark.slow
def test_fetch_real_package(tmp_path):
    """The real apt-get fetch of the smallest package (0.4 MB); skipped without apt-get or network."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("no apt-get / dpkg-deb")
    try:
        items = prepare_debian_sfx(tmp_path, packages=["sound-theme-freedesktop"], held_out=())
    except DownloadError as exc:
        pytest.skip(f"cannot fetch: {exc}")
    assert len(items) >= 15 and "camera shutter" in {i.caption for i in items}
    assert not any("audio-channel" in i.path for i in items)  # spoken channel names are left out
