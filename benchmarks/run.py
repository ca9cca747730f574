"""Run every benchmark, one after another, and assemble ``benchmarks/RESULTS.md``.

The benchmarks are the ``benchmarks/bench_*.py`` scripts: ``core``, ``conditioning``, ``training`` and
``samplers`` first (those that exist), then any others in alphabetical order.  Each runs in its own
process, never two at once (they would share the cores and spoil each other's times), as
``python benchmarks/bench_<name>.py --out benchmarks/results/<name>.md``; every benchmark script
takes ``--out`` and ``--quick``.  Then ``RESULTS.md`` gets a header (date, machine, command,
threads, git commit), a table of what ran, and every ``benchmarks/results/*.md`` with its headings
moved one level down.  A report that this run did not write (its benchmark failed or was not run)
is included but marked with its file date.  A failing benchmark does not stop the others; it is
listed in ``RESULTS.md`` with the end of its output, and ``run.py`` exits with status 1 at the end.

``--quick`` passes ``--quick`` to every benchmark; their reports then go to a temporary folder and
the assembled report is printed (and written only with ``--out``), so quick numbers never replace
the full results.  Run from the repository root (``make bench`` does)::

    .venv/bin/python benchmarks/run.py            # everything (hours on 2 cores): results/*.md and RESULTS.md
    .venv/bin/python benchmarks/run.py --quick    # every benchmark's --quick; prints the assembled report
    .venv/bin/python benchmarks/run.py --dry-run  # list what would run
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS = BENCH_DIR / "RESULTS.md"
ORDER = ("core", "conditioning", "training", "samplers")
TAIL_LINES = 30  # of a failed benchmark's output, in RESULTS.md


rel = common.repo_relative


def discover(only: list[str] | None = None) -> list[str]:
    """Names of the ``bench_<name>.py`` scripts: ``ORDER`` first, then the rest alphabetically."""
    found = sorted(p.stem[len("bench_"):] for p in BENCH_DIR.glob("bench_*.py"))
    names = [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]
    if only:
        missing = sorted(set(only) - set(found))
        if missing:
            raise SystemExit(f"no benchmarks/bench_<name>.py for: {', '.join(missing)} (found: {', '.join(found)})")
        names = [n for n in names if n in only]
    return names


def command(name: str, out: Path, quick: bool) -> list[str]:
    """The command line that runs one benchmark, writing its report to ``out``."""
    return [sys.executable, rel(BENCH_DIR / f"bench_{name}.py"), *(["--quick"] if quick else []), "--out", rel(out)]


@dataclass
class Outcome:
    """How one benchmark's process went."""

    name: str
    argv: list[str]
    returncode: int
    seconds: float
    tail: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_one(name: str, argv: list[str]) -> Outcome:
    """Run one benchmark, echoing its output, and keep the end of the output."""
    print(f"\n=== [{time.strftime('%H:%M:%S')}] {name}: {shlex.join(argv)}", flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, cwd=common.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
    except OSError as exc:
        return Outcome(name, argv, 127, time.perf_counter() - start, [f"could not start: {exc}"])
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        tail.append(line.rstrip("\n"))
    returncode = proc.wait()
    seconds = time.perf_counter() - start
    status = "ok" if returncode == 0 else f"FAILED (exit status {returncode})"
    print(f"=== {name}: {status} in {seconds:.0f} s", flush=True)
    return Outcome(name, argv, returncode, seconds, list(tail))


def git_commit() -> str:
    """``HEAD``'s hash and subject, and whether the working tree has uncommitted changes."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=common.REPO_ROOT, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return ""
        return done.stdout.strip()

    head = git("log", "-1", "--format=%H (%s)")
    if not head:
        return "unknown (not a git checkout?)"
    # the reports this run writes are not changes to what was measured
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                ":(exclude)benchmarks/results", ":(exclude)benchmarks/RESULTS.md")
    return head + (" + uncommitted changes" if dirty else "")


def demote(text: str) -> str:
    """Markdown headings one level down (``#`` -> ``##``), outside code fences."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if not fenced and re.match(r"#{1,5} ", line) else line)
    return "\n".join(lines)


def header(seconds: float, loads: tuple[float, float], quick: bool, commit: str) -> str:
    date = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    facts = common.machine()
    lines = [
        "# audiodiff benchmark results" + (" (--quick)" if quick else ""),
        "",
        "Assembled by `benchmarks/run.py` from the benchmarks' reports"
        + (" (`--quick` runs, written to a temporary folder)" if quick else " in `benchmarks/results/`")
        + "; each report below has its own header (date, command, machine, load). Speed claims are ratios "
        "against baselines timed in the same run.",
        "",
        f"- date: {date}",
        f"- command: `{common.command_line()}`",
        f"- git commit (at the start): {commit}",
        f"- wall time of all benchmarks: {seconds / 60:.1f} min",
        f"- threads: every benchmark sets {common.DEFAULT_THREADS} torch threads (`OMP_NUM_THREADS={common.DEFAULT_THREADS}`, "
        f"`OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}`) and they run one after another",
        f"- CPU: {facts['CPU']}, {facts['cores (os.cpu_count)']} cores",
        f"- python {facts['python']}, torch {facts['torch']}, diffusers {facts['diffusers']}, audiodiff {facts['audiodiff']}",
        f"- platform: {facts['platform']}",
        f"- load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f}",
    ]
    return "\n".join(lines)


def summary(outcomes: list[Outcome], reports: dict[str, Path], started: float) -> str:
    rows = []
    for o in outcomes:
        report = reports.get(o.name)
        fresh = report is not None and report.is_file() and report.stat().st_mtime >= started
        rows.append([f"`bench_{o.name}.py`", "ok" if o.ok else f"**FAILED** (exit status {o.returncode})",
                     f"{o.seconds / 60:.1f} min", f"`{report.name}`" if fresh else "none written"])
    return common.markdown_table(["benchmark", "status", "wall time", "report"], rows)


def failures(outcomes: list[Outcome]) -> str:
    parts = []
    for o in outcomes:
        if not o.ok:
            parts += [f"### `bench_{o.name}.py` failed (exit status {o.returncode})", "",
                      f"Command: `{shlex.join(o.argv)}`. Last {len(o.tail)} lines of its output:", "",
                      "```", *o.tail, "```", ""]
    return "\n".join(["## Failures", "", *parts]) if parts else ""


def assemble(report_dir: Path, names: list[str], started: float) -> str:
    """Every ``report_dir/*.md`` (the benchmarks' order first), headings demoted, stale ones marked."""
    files = sorted(report_dir.glob("*.md"))
    rank = {name: i for i, name in enumerate(names)}
    files.sort(key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    parts = []
    for path in files:
        note = ""
        if path.stat().st_mtime < started:
            when = _dt.datetime.fromtimestamp(path.stat().st_mtime).astimezone().strftime("%Y-%m-%d %H:%M %Z")
            why = "its benchmark failed" if path.stem in names else "no benchmark of this run writes it"
            note = f"\n\n> **Not written by this run** (`{rel(path)}`, file date {when}; {why}): older numbers."
        text = demote(path.read_text().strip())
        first, _, rest = text.partition("\n")
        parts.append(first + note + ("\n" + rest if rest else ""))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="pass --quick to every benchmark; reports go to a temporary folder, the assembled "
                             "report is printed (and written only with --out)")
    parser.add_argument("--dry-run", action="store_true", help="list the commands that would run, and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="run only these benchmarks (bench_NAME.py); RESULTS.md still gathers every report")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the assembled report (default: {rel(RESULTS)}; none with --quick)")
    args = parser.parse_args(argv)
    names = discover(args.only)
    out = args.out or (None if args.quick else RESULTS)
    temp = tempfile.TemporaryDirectory(prefix="audiodiff-bench-") if args.quick else None
    report_dir = Path(temp.name) if temp else RESULTS_DIR
    reports = {name: report_dir / f"{name}.md" for name in names}
    plan = [(name, command(name, reports[name], args.quick)) for name in names]
    if args.dry_run:
        print(f"would run {len(plan)} benchmark(s), one after another, from {common.REPO_ROOT}:")
        for name, cmd in plan:
            print(f"  {name}: {shlex.join(cmd)}")
        print(f"then assemble {rel(report_dir)}/*.md into {rel(out) if out else 'stdout (no file)'}")
        return 0

    common.setup_threads()  # for the header; each benchmark sets its own threads
    started, load_before, start, commit = time.time(), os.getloadavg(), time.perf_counter(), git_commit()
    outcomes = [run_one(name, cmd) for name, cmd in plan]
    seconds, load_after = time.perf_counter() - start, os.getloadavg()
    text = "\n\n".join(part for part in [
        header(seconds, (load_before[0], load_after[0]), args.quick, commit),
        summary(outcomes, reports, started),
        failures(outcomes),
        assemble(report_dir, names, started),
    ] if part)
    if out is not None:
        print(f"\nwrote {common.write_report(out, text)}")
    else:
        print("\n" + text)
    if temp:
        temp.cleanup()
    failed = [o.name for o in outcomes if not o.ok]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
