"""Reliability of ours vs the pure-Python reference (mmap-ninja 0.9.0): kill -9 during extend, readers during
writes, damaged stores, pickled size.

    .venv/bin/python benches/reliability.py [--quick] [--only NAME[,NAME]] [--json FILE]
                                           [--reference-python PATH] [--seed N] [--tmp-dir DIR]

Runs under ours' python (``sys.executable``). Each probe of ``benches/probes.py`` runs in a subprocess under
ours' python, then under the reference's (``--reference-python``, default ``.venv-ref/bin/python``; without
it, only ours), and prints one JSON line; the table shows probe | ours | reference. Nothing asserts on what
is measured: the exit status is 1 only when a probe could not run under ours at all (a harness failure).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import impl_versions, machine  # noqa: E402  (sibling scripts, not a package)

REPO = Path(__file__).resolve().parent.parent
PROBES_PY = Path(__file__).resolve().parent / "probes.py"
PROBES = ("kill9_extend", "readers_during_writes", "mutated_stores", "pickle_size")
# What the issue reported for the reference, at full size.
ISSUE = {
    "kill9_extend": "broke in 21 of 30 trials",
    "readers_during_writes": "6,395 errors in 300,000 reads",
    "mutated_stores": "2 segfaults in 400 mutated stores",
    "pickle_size": "39 MB RaggedMmap -> 39 MB pickle; StringsMmap cannot be pickled",
}
TRANSIENT = ("ImportError", "ModuleNotFoundError")  # ours may be rebuilt (maturin develop) while we run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run (< 60 s for both)")
    parser.add_argument("--only", help=f"comma-separated probe names; default: all of {', '.join(PROBES)}")
    parser.add_argument("--reference-python", type=Path, default=REPO / ".venv-ref" / "bin" / "python")
    parser.add_argument("--json", type=Path, help="also save every probe's full output to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp-dir", type=Path, help="where the probes write their stores")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per probe run")
    parser.add_argument("--verbose", action="store_true", help="pass the probes' progress (stderr) through")
    return parser.parse_args(argv)


def run_probe(python: Path, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One probe under one interpreter; retried twice if importing mmap_ninja fails (a rebuild under us)."""
    cmd = [str(python), str(PROBES_PY), name, "--seed", str(args.seed)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--tmp-dir", str(args.tmp_dir)] if args.tmp_dir else []
    for attempt in range(3):
        try:
            proc = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=None if args.verbose else subprocess.PIPE,
                text=True,
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {args.timeout:.0f} s"}
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        out = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            out = {"error": f"exit {proc.returncode}: {tail[0][:200]}"}
        if not out.get("error", "").split(":")[0].endswith(TRANSIENT) or attempt == 2:
            return out  # type: ignore[no-any-return]
        print(f"  {out['error']}: retrying in 5 s", flush=True)
        time.sleep(5)
    raise AssertionError("unreachable")


def cell(out: dict[str, Any] | None, label: str) -> str:
    if out is None:
        return "n/a"
    if "error" in out:
        return "probe failed: " + out["error"][:60]
    return str(out["rows"].get(label, "-"))


def print_table(results: dict[str, dict[str, Any]], impls: list[str]) -> None:
    header = ["probe", "ours", "reference"]
    rows = []
    for name, by_impl in results.items():
        labels: list[str] = []
        for out in by_impl.values():
            labels += [label for label in out.get("rows", {}) if label not in labels]
        for label in labels or ["(no result)"]:
            rows.append([f"{name}: {label}", *(cell(by_impl.get(impl), label) for impl in header[1:])])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for r in [header, ["-" * w for w in widths], *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print()
    for name in results:
        print(f"issue, reference at full size: {name}: {ISSUE[name]}")
    for name, by_impl in results.items():
        for impl in impls:
            if "error" in by_impl[impl]:
                print(f"error: {name} ({impl}): {by_impl[impl]['error']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only.split(",") if args.only else list(PROBES)
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        sys.exit(f"unknown probe(s): {', '.join(unknown)}; known: {', '.join(PROBES)}")
    pythons = {"ours": Path(sys.executable)}
    if args.reference_python.exists():
        pythons["reference"] = args.reference_python
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["reliability.py", *argv])
    versions = {impl: impl_versions(python) for impl, python in pythons.items()}
    m = machine()
    print(f"command: {command}")
    print(f"machine: nproc={m['nproc']} cpu={m['cpu']!r} mem={m['mem_gb']} GB kernel={m['kernel']}")
    for impl, python in pythons.items():
        v = versions[impl]
        print(f"{impl}: {python} (python {v.get('python', '?')}) mmap_ninja={v.get('mmap_ninja', '?')}")
    if "reference" not in pythons:
        print(f"note: no reference python at {args.reference_python} (scripts/ref_venv.sh makes it); ours only")
    start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = {}
        for impl, python in pythons.items():
            t = time.perf_counter()
            out = results[name][impl] = run_probe(python, name, args)
            status = out.get("error", "ok")
            print(f"{name} {impl}: {time.perf_counter() - t:.1f} s, {status}", flush=True)
    print_table(results, list(pythons))
    print(f"total: {time.perf_counter() - start:.1f} s")
    if args.json:
        report = {"command": command, "machine": m, "versions": versions, "quick": args.quick, "results": results}
        args.json.write_text(json.dumps(report, indent=1))
        print(f"saved {args.json}")
    return 1 if any("error" in results[name]["ours"] for name in names) else 0


if __name__ == "__main__":
    sys.exit(main())
