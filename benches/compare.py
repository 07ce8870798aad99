"""Ours vs the pure-Python reference (mmap-ninja 0.9.0) on one workload, in alternating rounds.

    .venv/bin/python benches/compare.py [--quick] [--rounds N] [--only a,b] [--json FILE]
                                        [--reference-python PATH] [--data-dir DIR] [size flags]

Runs under ours' python (``sys.executable``). The read-only stores are built once with ours into a temporary
directory (or ``--data-dir``, reused while its sizes match) and both implementations read them; the build
figures write fresh directories per implementation. Each round spawns ``benches/workload.py run`` under ours'
python, then under the reference's, and reads one JSON line of timings. Prints the medians over rounds for
ours / reference / numpy floor and the ratio (">1 means ours faster"). Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402  (a sibling script, not a package)

REPO = Path(__file__).resolve().parent.parent
WORKLOAD = Path(__file__).resolve().parent / "workload.py"
IMPLS = ("ours", "reference")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds: a smoke run (< 60 s)")
    parser.add_argument("--rounds", type=int, help="rounds per implementation (default 5; 2 with --quick)")
    parser.add_argument("--only", help="comma-separated figure (or group) names; default: all")
    parser.add_argument("--reference-python", type=Path, default=REPO / ".venv-ref" / "bin" / "python")
    parser.add_argument("--data-dir", type=Path, help="keep the built stores here (reused while sizes match)")
    parser.add_argument("--json", type=Path, help="also save the raw rounds and the summary to this file")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per workload run")
    parser.add_argument("--verbose", action="store_true", help="pass the workload's progress (stderr) through")
    workload.add_size_args(parser, workload.Sizes())
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------- header


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def machine() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": affinity,
        "cpu": cpu_model(),
        "mem_gb": round(mem_total_gb(), 1),
        "kernel": platform.release(),
    }


def impl_versions(python: Path) -> dict[str, Any]:
    proc = subprocess.run([str(python), str(WORKLOAD), "versions"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def print_header(command: str, pythons: dict[str, Path], versions: dict[str, Any], sizes: workload.Sizes) -> None:
    m = machine()
    print(f"command: {command}")
    print(
        f"machine: nproc={m['nproc']} usable={m['usable_cpus']} cpu={m['cpu']!r} mem={m['mem_gb']} GB "
        f"kernel={m['kernel']}"
    )
    for impl, python in pythons.items():
        v = versions[impl]
        pkgs = " ".join(f"{k}={v[k]}" for k in ("mmap_ninja", "numpy", "joblib") if k in v)
        print(f"{impl}: {python} (python {v.get('python', '?')}) {pkgs} {v.get('error', '')}".rstrip())
    print("sizes: " + " ".join(f"{k}={v}" for k, v in asdict(sizes).items()))
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------- running


def run_workload(python: Path, argv: list[str], timeout: float, verbose: bool) -> dict[str, Any]:
    """One workload run; a crash or a missing JSON line becomes an error for every figure."""
    cmd = [str(python), str(WORKLOAD), *argv]
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"crash": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"crash": f"exit {proc.returncode}: {tail[0][:200]}"}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def prepare_data(python: Path, data: Path, sizes: workload.Sizes, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(WORKLOAD), "prepare", "--data-dir", str(data), *workload.size_argv(sizes)],
        stderr=None if args.verbose else subprocess.PIPE,
        text=True,
        timeout=args.timeout,
    )
    if proc.returncode != 0:
        sys.exit(f"building the data with ours failed:\n{proc.stderr}")
    print(f"data: {data} (built with ours in {time.perf_counter() - start:.1f} s)", flush=True)


def run_rounds(
    pythons: dict[str, Path], data: Path, sizes: workload.Sizes, rounds: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    base = ["run", "--data-dir", str(data), *workload.size_argv(sizes)]
    if args.only:
        base += ["--only", args.only]
    runs = []
    for r in range(rounds):
        for impl, python in pythons.items():
            argv = base + (["--floor"] if impl == "ours" else [])  # floors are measured in ours' rounds only
            start = time.perf_counter()
            out = run_workload(python, argv, args.timeout, args.verbose)
            wall = time.perf_counter() - start
            status = out.get("crash") or f"checks {out.get('checks')}"
            print(f"round {r + 1}/{rounds} {impl}: {wall:.1f} s, {status}", flush=True)
            runs.append({"impl": impl, "round": r + 1, "wall_s": wall, **out})
    return runs


# ----------------------------------------------------------------------------------------------- summary


def summarise(runs: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        unit, direction = workload.FIGURES[name]
        row: dict[str, Any] = {"unit": unit, "direction": direction, "errors": {}}
        for impl in IMPLS:
            mine = [r for r in runs if r["impl"] == impl]
            got = [r.get("results", {}).get(name) for r in mine]
            values = [g["value"] for g in got if g and "value" in g]
            errors = [g["error"] for g in got if g and "error" in g] + [r["crash"] for r in mine if "crash" in r]
            row[impl] = statistics.median(values) if values else None
            row[f"{impl}_rounds"] = len(values)
            if errors:
                row["errors"][impl] = errors[0]
            if impl == "ours":
                floors = [g["floor"] for g in got if g and g.get("floor") is not None]
                row["floor"] = statistics.median(floors) if floors else None
        row["ratio"] = ratio(row["ours"], row["reference"], direction)
        summary[name] = row
    return summary


def ratio(ours: float | None, ref: float | None, direction: str) -> float | None:
    if ours is None or ref is None or direction == "info" or ours <= 0 or ref <= 0:
        return None
    return ref / ours if direction == "lower" else ours / ref


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e4:
        return f"{value:.0f}"
    return f"{value:.4g}"


def cell(row: dict[str, Any], impl: str, rounds: int) -> str:
    if row[impl] is None and impl in row["errors"]:
        return "error: " + row["errors"][impl][:40]
    text = fmt(row[impl])
    return text + ("*" if row[impl] is not None and row[f"{impl}_rounds"] < rounds else "")


def print_table(summary: dict[str, dict[str, Any]], rounds: int, has_ref: bool) -> None:
    header = ["figure", "unit", "ours", "reference", "numpy floor", "ref/ours"]
    rows = [
        [
            name,
            row["unit"],
            cell(row, "ours", rounds),
            cell(row, "reference", rounds) if has_ref else "n/a",
            fmt(row["floor"]),
            "-" if row["ratio"] is None else f"{row['ratio']:.2f}",
        ]
        for name, row in summary.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print(
        f"\nmedians over {rounds} round(s); ref/ours > 1 means ours is faster (for GB/s, x and MB rows it is the "
        "ratio of the better direction); * = some rounds failed; floors measured in ours' rounds."
    )
    for name, row in summary.items():
        for impl, msg in row["errors"].items():
            print(f"error: {name} ({impl}): {msg}")


def figure_names(only: str | None) -> list[str]:
    if not only:
        return list(workload.FIGURES)
    wanted = set(only.split(","))
    groups = {name: outputs for name, _, outputs in workload.GROUPS}
    unknown = sorted(w for w in wanted if w not in workload.FIGURES and w not in groups)
    if unknown:
        sys.exit(f"unknown figure(s): {', '.join(unknown)}; known: {', '.join(workload.FIGURES)}")
    return [n for n in workload.FIGURES if n in wanted or any(n in groups[g] for g in wanted if g in groups)]


def resolve_pythons(reference: Path) -> dict[str, Path]:
    return {"ours": Path(sys.executable), **({"reference": reference} if reference.exists() else {})}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = workload.sizes_from_args(args, workload.QUICK if args.quick else workload.Sizes())
    rounds = args.rounds or (2 if args.quick else 5)
    names = figure_names(args.only)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["compare.py", *argv])
    pythons = resolve_pythons(args.reference_python)
    versions = {impl: impl_versions(python) for impl, python in pythons.items()}
    print_header(command, pythons, versions, sizes)
    if "reference" not in pythons:
        print(f"note: no reference python at {args.reference_python} (scripts/ref_venv.sh makes it); ours + numpy only")
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="mmap_ninja_compare_"))
    start = time.perf_counter()
    try:
        prepare_data(pythons["ours"], data, sizes, args)
        runs = run_rounds(pythons, data, sizes, rounds, args)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data, ignore_errors=True)
    summary = summarise(runs, names)
    print_table(summary, rounds, "reference" in pythons)
    print(f"total: {time.perf_counter() - start:.1f} s")
    if args.json:
        report = {
            "command": command,
            "machine": machine(),
            "versions": versions,
            "sizes": asdict(sizes),
            "rounds": runs,
            "summary": summary,
        }
        args.json.write_text(json.dumps(report, indent=1))
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
