"""The architecture as a test: the import-linter contracts in pyproject.toml (``[tool.importlinter]``)
hold, so dependencies flow one way (shared/DESIGN.md), nothing but the CLI imports the CLI, there are no
import cycles between layers and the library never imports Hydra or the recipes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    pytest.importorskip("importlinter", reason="needs the dev extra (import-linter)")
    beside = Path(sys.executable).parent / "lint-imports"
    command = str(beside) if beside.exists() else shutil.which("lint-imports")
    if command is None:
        pytest.skip("lint-imports not found")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([command, "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
