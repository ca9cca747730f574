"""An evaluation report (:func:`audiodiff.evaluation.evaluate.evaluate`) as JSON and as a markdown table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from ..files import atomic_write_bytes, finite_or_null, json_bytes


def _same(key: str) -> dict[str, str]:
    return {"generated": key, "reference": key, "resynthesized": key}


#: (row title, the report key of each column's section)
ROWS: tuple[tuple[str, dict[str, str]], ...] = (
    ("Frechet distance (judge embedding), lower is better",
     {"generated": "frechet_distance", "reference": "frechet_distance_halves", "resynthesized": "frechet_distance"}),
    ("accuracy (judge vs the class of the prompt / real clip: its label, caption or caption-pattern class), higher is better",
     {"generated": "prompt_accuracy", "reference": "accuracy", "resynthesized": "accuracy"}),
    ("Inception Score, higher is better", _same("inception_score")),
    ("modified Inception Score, higher is better", _same("modified_inception_score")),
    ("AM score, lower is better", _same("am_score")),
    ("NDB/k, lower is better", {"generated": "ndb", "reference": "ndb_halves", "resynthesized": "ndb"}),
    ("pitch accuracy (pYIN median f0 within a semitone of the caption's note), higher is better",
     _same("pitch_accuracy")),
    ("caption retrieval recall@1 (judge embedding vs caption prototypes), higher is better", _same("retrieval_top1")),
    ("caption retrieval recall@1 at chance", _same("retrieval_chance_top1")),
    ("caption retrieval recall@5, higher is better", _same("retrieval_top5")),
    ("caption retrieval recall@5 at chance", _same("retrieval_chance_top5")),
)
#: rows shown only when some column has a value (they apply to some judges and prompts only)
OPTIONAL_ROWS = ("pitch_accuracy", "retrieval_top1", "retrieval_chance_top1", "retrieval_top5", "retrieval_chance_top5")
COLUMNS: dict[str, str] = {
    "generated": "generated",
    "reference": "reference (real clips)",
    "resynthesized": "resynthesized (real clips through the model's mel + vocoder)",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def markdown_table(report: Mapping[str, Any]) -> str:
    """The report as markdown: a line of settings and a table of the scores."""
    s = report["settings"]
    sections = [name for name in COLUMNS if name in report]
    lines = [f"# Evaluation of {s.get('model') or 'a model'}", "",
             f"Judge: {s.get('judge')} ({len(s['judge_labels'])} labels). {s['num_samples']} generated clips "
             f"({s['prompt_mode']}, {s.get('steps')} steps, seed {s['seed']}); {s['num_reference']} reference clips; "
             f"NDB k = {s.get('ndb_k')}. The reference column's Frechet distance and NDB/k are between two halves "
             "of the reference set (the floor at that sample size).",
             "", "| metric | " + " | ".join(COLUMNS[name] for name in sections) + " |",
             "|---" * (len(sections) + 1) + "|"]
    for title, keys in ROWS:
        if keys["generated"] in OPTIONAL_ROWS and all(report[name].get(keys[name]) is None for name in sections):
            continue
        lines.append(f"| {title} | " + " | ".join(_fmt(report[name].get(keys[name])) for name in sections) + " |")
    lines += ["", "Timing (s): " + ", ".join(f"{k} {v}" for k, v in report.get("timing", {}).items()), ""]
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], path_json: str | Path, path_md: str | Path,
                 overwrite: bool = True) -> tuple[Path, Path]:
    """Write ``report`` as indented JSON to ``path_json`` and as a markdown table to ``path_md`` (atomically;
    existing files are replaced only with ``overwrite``)."""
    json_path = atomic_write_bytes(path_json, json_bytes(finite_or_null(report)), overwrite)  # undefined: null
    md_path = atomic_write_bytes(path_md, markdown_table(report).encode(), overwrite)
    return json_path, md_path
