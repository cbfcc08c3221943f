"""minimax-watcher benchmarks: the agent against the baselines a user would otherwise use, in one run.

    python bench/run.py            the full suite (about 30 minutes), writes bench/RESULTS.md
    python bench/run.py --quick    everything scaled down (about 1.5 minutes), for CI smoke runs
    python bench/run.py --only latency,burst --results /tmp/r.md

The agent is the real `python -m watcher run` process; the API is `watcher.emulator.Emulator` in its own
process (bench/harness/emulator.py) on loopback, shared by the agent and every baseline. Baselines run
in the same invocation, just before or after the agent, so ratios hold on a noisy shared machine where
absolute figures do not. Nothing here asserts on a duration: the exit status is non-zero only when the benchmark
machinery itself failed (a workload raised, an upload never completed).

See bench/README.md for what each workload measures and how.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

# This file is the command line only: the machinery is in bench/harness/, each workload in
# bench/workloads/ (bench/README.md, "Layout"). Both are imported as top-level packages, bench/ being
# on sys.path when this file is run as a script.
from harness.constants import BENCH, REPO
from harness.context import Context
from harness.procfs import loadavg
from harness.report import print_table, render
from harness.results import Outcome
from workloads import WORKLOADS


def export_revision(rev: str, dest: Path) -> str:
    """`git archive REV watcher` into `dest`; returns `dest` for PYTHONPATH, labelled with the commit."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = dest.with_name(f"{dest.name}-{commit}")
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "watcher"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return str(dest)


def byte_compile_agent(agent_src: str | None) -> Path:
    """Compile the agent's modules to bytecode, as `pip install` does, and return their folder.

    The agent the bench starts is measured as users run it: installed, with its `.pyc` files. Without
    them every start compiles the package again (about half a second on the reference VM), and nothing
    writes them back when the environment sets PYTHONDONTWRITEBYTECODE or the source folder is read-only.
    """
    if agent_src:
        package = Path(agent_src) / "watcher"
    else:
        spec = importlib.util.find_spec("watcher")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("the watcher package is not installed: pip install -e . first")
        package = Path(next(iter(spec.submodule_search_locations)))
    if not compileall.compile_dir(package, quiet=1):
        raise SystemExit(f"could not byte-compile {package}")
    return package


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mmw-bench-"))
    try:
        yield base
    finally:
        if keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="scaled-down workloads (smoke test)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    parser.add_argument(
        "--results", type=Path, default=BENCH / "RESULTS.md", help="where to write the report"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) for inspection")
    parser.add_argument(
        "--agent-src",
        help="run the agent from this folder (one holding a `watcher` package, e.g. a scratch copy with a "
        "change to try) instead of the installed one; the report says so",
    )
    parser.add_argument(
        "--agent-rev",
        help="run the agent as committed at this git revision (e.g. HEAD), exported to the work folder, "
        "instead of the working tree others may be editing",
    )
    args = parser.parse_args(argv)
    names = list(WORKLOADS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    mode = "quick" if args.quick else "full"
    started = datetime.now(UTC)
    load_start = loadavg()
    outcomes: list[Outcome] = []
    with workdir(args.keep) as work:
        agent_src = str(Path(args.agent_src).resolve()) if args.agent_src else None
        if args.agent_rev:
            agent_src = export_revision(args.agent_rev, work / "agent-src")
        byte_compile_agent(agent_src)
        ctx = Context(work, mode, agent_src, keep=args.keep)
        missing = [t for t, ok in ctx.tools.items() if not ok]
        if missing:
            print(
                f"warning: {', '.join(missing)} not found; the baselines that need them are skipped",
                file=sys.stderr,
            )
        try:
            for name in names:
                outcome = Outcome(name)
                print(f"== {name} ...", file=sys.stderr, flush=True)
                began = time.monotonic()
                try:
                    WORKLOADS[name](ctx, outcome)
                except Exception:
                    outcome.error = traceback.format_exc()
                    print(outcome.error, file=sys.stderr)
                outcome.seconds = time.monotonic() - began
                outcome.load = loadavg()
                outcomes.append(outcome)
                print(f"   {name} done in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
        finally:
            ctx.emulator.stop()
    report = render(outcomes, mode, started, (load_start, loadavg()), agent_src)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(report + "\n")
    print_table(outcomes)
    print(f"\nwritten to {args.results}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
