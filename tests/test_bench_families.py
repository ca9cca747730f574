"""The families benchmark (diffusion vs GAN vs VAE on spoken digits) runs end to end in its quick mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "data" / "fsdd"


@pytest.mark.slow
@pytest.mark.skipif(not FSDD.is_dir(), reason="needs ../shared/data/fsdd")
def test_quick_mode_trains_evaluates_and_reports_every_family(tmp_path: Path) -> None:
    out, work = tmp_path / "families.md", tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "benchmarks/bench_families.py", "--quick", "--work", str(work), "--out", str(out)]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = out.read_text()
    for family in ("diffusion", "gan", "vae"):
        assert f"| {family} |" in report
        final = json.loads((work / f"{family}-seed0" / "final.json").read_text())
        assert final["diverged"] is None and len(final["curve"]) == 2
        figures = final["final"]
        assert 0.0 <= figures["accuracy"] <= 1.0 and figures["fd"] > 0 and figures["real_time_factor"] > 0
        assert (figures["bits_per_dim"] is None) == (family == "gan")
        assert final["losses"] and all(points for points in final["losses"].values())
    assert (tmp_path / "families_fd.png").stat().st_size > 1000
    assert (tmp_path / "families_losses.png").stat().st_size > 1000
    raw = json.loads((work / "results.json").read_text())
    assert set(raw["results"]) == {"diffusion", "gan", "vae"} and raw["real"]["accuracy"] > 0.5

    # a second run reuses every finished run instead of training again
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "leg 1/2" not in again.stderr

    # the report of a finished run can be written again, e.g. with another FD target, without training
    rerender = [sys.executable, "benchmarks/bench_families.py", "--report-from", str(work / "results.json"),
                "--out", str(tmp_path / "again.md"), "--fd-target", "1e9"]
    third = subprocess.run(rerender, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-4000:]
    again_report = (tmp_path / "again.md").read_text()
    assert "s to FD <= 1000000000.0" in again_report and "| gan |" in again_report
    assert (tmp_path / "again_fd.png").is_file()
