"""Long fuzzing run ("soak") of vmapc's batching and compiling.

    python scripts/soak.py --minutes 30            # one process
    python scripts/soak.py --minutes 30 --jobs 4   # four processes, different seeds

Draws random programs with :mod:`vmapc.fuzz`, batches them with random nested
vmaps, and checks each against the per-example loop on the reference evaluator
and compiled by IREE for the CPU (``--no-compile``: reference only). Every
failure is shrunk by hypothesis to a minimal program, printed, and appended to
``--out`` (default ``soak-failures.txt``); the run then goes on with a new seed.
At the end it prints how many programs ran and how many failed; the exit status
is 1 if any did.

Compiled modules are not written to the disk cache (every program is new).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback


def _run(args) -> tuple:
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    from vmapc import fuzz

    deadline = time.monotonic() + 60 * args.minutes
    counts = {"programs": 0, "compiled": 0, "failures": 0, "skipped_elements": 0}
    rnd = args.seed
    while time.monotonic() < deadline:
        rnd += 1
        done = [False]

        @seed(rnd)
        @settings(max_examples=args.examples_per_round, deadline=None, database=None, print_blob=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(fuzz.programs(max_eqns=args.max_eqns, max_depth=args.max_depth,
                                                      control=args.control),
                        min_size=1, max_size=args.batch))
        def check(progs):
            if time.monotonic() > deadline and not done[0]:
                return          # out of time: let hypothesis finish quickly
            exps = []
            for p in progs:
                exps.append(fuzz.check_reference(p))
                counts["programs"] += 1
                counts["skipped_elements"] += exps[-1].skipped
            if not args.no_compile:
                counts["compiled"] += fuzz.check_compiled(progs, expected=exps, cache=False)

        try:
            check()
        except Exception as err:  # a failure, already shrunk by hypothesis
            done[0] = True
            counts["failures"] += 1
            text = "".join(traceback.format_exception(err))
            print(f"\n=== failure (seed {rnd}) ===\n{text}", flush=True)
            with open(args.out, "a") as f:
                f.write(f"=== failure (seed {rnd}, pid {os.getpid()}) ===\n{text}\n")
            counts["known_iree_bugs"] = fuzz.stats["known_iree_bugs"]
        if args.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] round {rnd}: {counts}", flush=True)
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=1, help="processes (each with its own seeds)")
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: from the clock)")
    ap.add_argument("--batch", type=int, default=8, help="programs per IREE module")
    ap.add_argument("--examples-per-round", type=int, default=25)
    ap.add_argument("--max-eqns", type=int, default=25)
    ap.add_argument("--max-depth", type=int, default=3, help="nested vmap levels")
    ap.add_argument("--no-compile", action="store_true", help="reference evaluator only")
    ap.add_argument("--control", type=float, default=0.0,
                    help="how often a step is a cond/while_loop/scan (0: straight-line programs only)")
    ap.add_argument("--out", default="soak-failures.txt")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = int(time.time()) % 1_000_000 * 1000
    start = time.monotonic()
    if args.jobs > 1:
        procs = []
        for j in range(args.jobs):
            cmd = [sys.executable, __file__, "--jobs", "1", "--seed", str(args.seed + 100_000 * j),
                   "--minutes", str(args.minutes), "--batch", str(args.batch),
                   "--examples-per-round", str(args.examples_per_round), "--max-eqns", str(args.max_eqns),
                   "--max-depth", str(args.max_depth), "--control", str(args.control), "--out", args.out]
            cmd += ["--no-compile"] * args.no_compile + ["-v"] * args.verbose
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        totals: dict = {}
        for p in procs:
            out, _ = p.communicate()
            sys.stdout.write(out)
            for line in out.splitlines():
                if line.startswith("SOAK-COUNTS "):
                    for k, v in (kv.split("=") for kv in line.split()[1:]):
                        totals[k] = totals.get(k, 0) + int(v)
        counts = totals
    else:
        counts = _run(args)
        print("SOAK-COUNTS " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    minutes = (time.monotonic() - start) / 60
    print(f"soak: {counts.get('programs', 0)} programs ({counts.get('compiled', 0)} compiled with IREE) in "
          f"{minutes:.1f} min, {counts.get('failures', 0)} failures, {counts.get('known_iree_bugs', 0)} "
          "programs skipped for a known IREE bug (vmapc.fuzz.KNOWN_IREE_BUGS)"
          + (f" (see {args.out})" if counts.get("failures") else ""), flush=True)
    return 1 if counts.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
