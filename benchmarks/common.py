"""Small helpers shared by the benchmark scripts.

- :func:`setup_threads`: pin torch (and OpenMP) to a fixed number of threads; call it before any
  timing, ideally before ``import torch`` elsewhere so ``OMP_NUM_THREADS`` takes effect too.
- :func:`machine`: a description of the machine and software (CPU model, cores, versions, threads).
- :func:`time_call`: warm-up calls, then the median (and spread) of timed repeats.
- :func:`markdown_table`, :func:`write_report`: results as markdown, on stdout and in a file.

Speed claims in the reports are ratios against a baseline timed side by side in the same run;
nothing here asserts a speed.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_THREADS = 2


def configure_environment(threads: int = DEFAULT_THREADS) -> None:
    """Put the thread settings in the environment; effective only before ``torch`` is imported.

    ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (idle OpenMP threads sleep instead of spinning):
    on a small machine shared with other work, spinning threads at every parallel region's barrier
    made small ops up to ~100x slower.  Set ``OMP_WAIT_POLICY=ACTIVE`` in the shell to override.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def setup_threads(threads: int = DEFAULT_THREADS) -> int:
    """Use ``threads`` intra-op threads in torch (and OpenMP); return the count torch reports."""
    configure_environment(threads)
    import torch

    torch.set_num_threads(threads)
    return torch.get_num_threads()


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    """Installed version of ``name`` or ``"not installed"``."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """Machine and software facts for a report header."""
    import torch

    return {
        "CPU": cpu_model(),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": package_version("diffusers"),
        "audiodiff": package_version("audiodiff"),
        "platform": platform.platform(),
    }


def repo_relative(path: Any) -> str:
    """``path`` relative to the repository root where it lies inside it, else as given (e.g. a model name)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except (TypeError, ValueError, OSError):
        return str(path)


def command_line() -> str:
    """The command that is running, relative to the repository root where possible."""

    def rel(path: str) -> str:
        try:
            return os.path.relpath(os.path.abspath(path), REPO_ROOT)
        except ValueError:
            return path

    python = sys.executable
    python = rel(python) if os.path.abspath(python).startswith(str(REPO_ROOT)) else python
    return shlex.join([python, rel(sys.argv[0]), *sys.argv[1:]])


@dataclass(frozen=True)
class Timing:
    """Seconds of the timed repeats of one call (warm-up excluded)."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def spread(self) -> str:
        """``"min-max"`` in milliseconds, for a table cell."""
        return f"{self.min * 1e3:.1f}-{self.max * 1e3:.1f}"


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed with ``perf_counter``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(tuple(times))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are formatted with ``str``."""
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def report_header(title: str, seconds: float | None = None) -> str:
    """Markdown header: title, date, command, and machine facts."""
    date = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    facts = machine()
    lines = [f"# {title}", "", f"- date: {date}", f"- command: `{command_line()}`"]
    if seconds is not None:
        lines.append(f"- wall time of the run: {seconds:.0f} s")
    lines += [f"- {key}: {value}" for key, value in facts.items()]
    return "\n".join(lines)


def write_report(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    return path


def emit_report(text: str, out: str | Path | None) -> None:
    """Print a report and, when ``out`` is given, write it there (quick runs pass ``None``)."""
    import sys

    print(text)
    if out is not None:
        print(f"\nwrote {write_report(out, text)}", file=sys.stderr)


def repeated_option(argv: list[str] | None, flag: str, settings: Sequence[dict], key: str) -> list[str]:
    """Take every ``flag VALUE`` out of ``argv`` (default ``sys.argv[1:]``); when there are any, set
    ``settings[i][key]`` to their list.  Returns what is left of ``argv`` for :func:`benchmark_main`."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    values = []
    while flag in argv:
        i = argv.index(flag)
        if i + 1 == len(argv):
            raise SystemExit(f"{flag} needs a value")
        values.append(argv[i + 1])
        del argv[i:i + 2]
    for s in settings:
        if values:
            s[key] = values
    return argv


def benchmark_main(title: str, results: Path, run: Callable[[Any], str], full: Any, quick: Any,
                   argv: list[str] | None, description: str, quick_help: str) -> int:
    """The command line every simple benchmark shares: ``--quick`` (``quick`` settings, print only)
    and ``--out``; times ``run(settings)``, adds the header and the load average, prints and writes."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to write (default: {results.relative_to(REPO_ROOT)} "
                             "for a full run, none with --quick)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch threads (default {DEFAULT_THREADS}; compare timings only at equal threads)")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    timed_report(title, results, lambda: run(quick if args.quick else full), args.quick, args.out)
    return 0


def timed_report(title: str, results: Path, make_body: Callable[[], str], quick: bool, out: Any) -> None:
    """Time ``make_body()``, add the header and the load average before and after, print, and write to
    ``out`` (default: ``results`` for a full run, nowhere with ``quick``)."""
    load_before = os.getloadavg()
    start = time.perf_counter()
    body = make_body()
    header = report_header(title + (" (--quick)" if quick else ""), time.perf_counter() - start)
    header += f"\n- load average (1 min) before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    emit_report(header + "\n\n" + body, out or (None if quick else results))


# -- the speech recipe's data --------------------------------------------------------------------
def shared_data() -> Path:
    """``$AUDIODIFF_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("AUDIODIFF_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def recipe_common():
    """``recipes/_common.py`` (what the recipe scripts run)."""
    sys.path.insert(0, str(REPO_ROOT / "recipes"))
    import _common

    return _common


def speech_recipe_config(manifest: Path, cache_dir: str | None = None, overrides: Sequence[str] = ()):
    """The speech recipe's config (``train.yaml`` plus Hydra ``overrides``) with its manifest (and cache)
    moved to ``manifest`` and FSDD read from :func:`shared_data`."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO_ROOT / "recipes" / "speech" / "conf"), version_base=None):
        cfg = compose(config_name="train", overrides=list(overrides))
    OmegaConf.update(cfg, "data.manifest", str(manifest))
    OmegaConf.update(cfg, "data.sources", [{"layout": "fsdd", "root": str(shared_data() / "fsdd"),
                                           "valid_from_train": True}])
    OmegaConf.update(cfg, "data.cache_dir", cache_dir)
    return cfg
