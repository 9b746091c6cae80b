#!/usr/bin/env python3
"""Run the cross-backend corpus on CUDA and print a pass/fail table.

Needs a machine with an NVIDIA GPU (driver installed) and ``pip install -e .`` from
the repository root; nothing else. From the repository root::

    python scripts/cuda_matrix.py                  # sm_80 PTX and the sm_90a target
    python scripts/cuda_matrix.py --arch sm_80     # one arch
    python scripts/cuda_matrix.py --compile-only   # no GPU needed: compile and check reflection

For each arch it compiles the corpus of ``scripts/backend_corpus.py`` (every op family,
vmap over several in_dims, nested vmap, the examples' programs) into a few modules,
runs each program on the GPU and compares it with NumPy within the tolerances of
``backend_corpus.TOLERANCES["cuda"]``. The table has one row per program family and one
column per arch: ``ok`` (all its programs match), ``FAIL`` (some differ: the details
follow the table), ``ERR`` (compiling or running raised), ``n/a`` (the target rejects
the dtype). sm_80 PTX runs on every GPU from Ampere on (the driver JIT-compiles it);
sm_90a code (compiled through an explicit ``#hal.executable.target``, IREE 3.13's
``--iree-cuda-target=sm_90a`` fails) runs on Hopper only: on other GPUs its column says
why it cannot load.

Exit status: 0 when everything that ran passed, 1 when a program failed, 2 when there
is no CUDA device (unless --compile-only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backend_corpus as bc  # noqa: E402

DEFAULT_ARCHS = ("sm_80", "sm_90a")


def cuda_device():
    """(device names, None) when a CUDA device can be opened, else ([], reason)."""
    from vmapc.targets import runtime_devices
    names, reason = runtime_devices("cuda")
    if reason is not None:
        return [], reason if reason.startswith("no CUDA device") else f"no CUDA device: {reason}"
    return names, None


def compute_capability():
    """The first GPU's compute capability as (major, minor) from nvidia-smi, or None."""
    import shutil
    import subprocess
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout.split()
        major, minor = out[0].split(".")
        return int(major), int(minor)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def arch_capability(arch: str):
    """sm_90a -> (9, 0)."""
    digits = "".join(ch for ch in arch.split("_", 1)[-1] if ch.isdigit())
    return (int(digits[:-1]), int(digits[-1])) if len(digits) >= 2 else None


def run_arch(arch: str, entries, *, run: bool, log=print) -> dict:
    """{entry name: "ok" | "FAIL: ..." | "ERR: ..." | "n/a: ..."} for one arch."""
    from vmapc.targets import target
    t = target("cuda", arch=arch)
    ok, skipped = bc.split(entries, t)
    status = {name: f"n/a: {why}" for name, why in skipped.items()}
    cc, need = (compute_capability() if run else None), arch_capability(arch)
    if run and cc is not None and need is not None and (
            cc < need or (arch.endswith("a") and cc[0] != need[0])):
        # sm_90a code runs on compute capability 9.0 only; sm_80 PTX on 8.0 and later
        log(f"  {arch}: compiled only, this GPU is sm_{cc[0]}{cc[1]}")
        run = False
    for i, group in enumerate(bc.modules(ok, n_modules=module_count(ok))):
        names = [e.name for _, spans in group for e, _, _ in spans]
        t0 = time.perf_counter()
        try:
            vmfb = bc.compile_module(group, t)
            bc.check_reflection(vmfb, group)
        except Exception as e:  # report and go on with the other modules
            for n in names:
                status[n] = f"ERR: compile: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            log(f"  {arch} module {i}: compile failed: {str(e).splitlines()[0][:200]}")
            continue
        log(f"  {arch} module {i}: {len(names)} programs compiled in {time.perf_counter() - t0:.1f} s")
        if not run:
            for n in names:
                status[n] = "ok (compiled)" if cc is None else f"n/a: compiled; the GPU (sm_{cc[0]}{cc[1]}) cannot run {arch}"
            continue
        try:
            results = bc.run_module(vmfb, group, t.driver)
        except Exception as e:
            for n in names:
                status[n] = f"ERR: run: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        for _, spans in group:
            for e, _, _ in spans:
                try:
                    bc.compare(e, results[e.name], "cuda")
                    status[e.name] = "ok"
                except AssertionError as err:
                    status[e.name] = f"FAIL: {err}"
    return status


def module_count(entries) -> int:
    """As tests/test_backends.py: two modules per target (IREE deduplicates identical
    kernels within a module, so few big modules compile fastest; two let two test
    workers share the work), and the shared compile cache serves both."""
    return 1 if len(entries) <= bc.MERGE else 2


def table(entries, by_arch: dict) -> str:
    archs = list(by_arch)
    families = []
    for e in entries:
        if e.family not in families:
            families.append(e.family)
    rows = [["family", "programs"] + archs]
    for fam in families:
        es = [e for e in entries if e.family == fam]
        row = [fam, str(len(es))]
        for a in archs:
            st = [by_arch[a][e.name] for e in es]
            if any(s.startswith("ERR") for s in st):
                row.append("ERR")
            elif any(s.startswith("FAIL") for s in st):
                row.append(f"FAIL {sum(s.startswith('FAIL') for s in st)}")
            elif all(s.startswith("n/a") for s in st):
                row.append("n/a")
            else:
                row.append("ok")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", action="append", help="CUDA arch (repeatable; default: sm_80 and sm_90a)")
    p.add_argument("--compile-only", action="store_true",
                   help="compile and check each module's reflection; no GPU needed")
    p.add_argument("--limit", type=int, help="only the first N programs of the corpus")
    a = p.parse_args(argv)
    archs = a.arch or list(DEFAULT_ARCHS)
    devices, reason = cuda_device()
    if not a.compile_only and reason is not None:
        print(f"cuda_matrix: {reason}. Run it on a machine with an NVIDIA GPU, or pass --compile-only.",
              file=sys.stderr)
        return 2
    entries = bc.build()
    if a.limit:
        entries = entries[:a.limit]
    print(f"corpus: {len(entries)} programs; "
          + (f"devices: {', '.join(devices)}" if devices else "compile only (no CUDA device)"))
    print(f"compile cache: {os.environ.get('VMAPC_CACHE_DIR') or '~/.cache/vmapc'}")
    by_arch = {a_: run_arch(a_, entries, run=not a.compile_only, log=lambda m: print(m, file=sys.stderr))
               for a_ in archs}
    print(table(entries, by_arch))
    bad = [(arch, n, s) for arch, st in by_arch.items() for n, s in st.items() if s.startswith(("FAIL", "ERR"))]
    for arch, n, s in bad[:50]:
        print(f"{arch} {n}: {s}")
    total = sum(1 for st in by_arch.values() for s in st.values() if s.startswith("ok"))
    print(f"{total} passed, {len(bad)} failed"
          + (" (compile only)" if a.compile_only else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
