"""Size a challenge for this machine's GPU and measure solving it.

    python bench/gpu_sizing.py --json [--profiles cuda-f16,cuda-i8] [--target-s 2]

For each profile: calibrate the whole-challenge throughput (generate, multiply, hash, tree) on
one product of a mid size; size a challenge for the GPU's memory (``torch.cuda.mem_get_info``)
with ``proof.sizing.size_challenge`` and that throughput; solve it ``--repeats`` times and
report the time against the expected time and the deadline, the throughput, and the peak
device memory against the sized working set (the residency the sizing promises). The last
solution is verified on the CPU. Prints one JSON object; without a CUDA GPU (or without
torch), one object that says so, and exit status 0.

It imports ``byteleap.proof`` from the checkout's ``src/``; on a GPU machine without a registry,
run ``/work/shared/gpu/check.sh`` first (it installs blake3 and pydantic from its wheels).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

# A mid size for the throughput calibration: big enough that the O(n²) work around the
# product is a few per cent, small enough to take well under a second on any CUDA GPU.
CALIBRATION_N = 16384


def _no_gpu(reason: str) -> dict[str, Any]:
    return {"ok": False, "gpu": None, "message": f"no GPU: {reason}"}


def _gpu() -> tuple[Any, dict[str, Any]] | dict[str, Any]:
    try:
        import torch
    except ImportError:
        return _no_gpu("torch is not installed")
    if not torch.cuda.is_available():
        return _no_gpu("torch.cuda.is_available() is False")
    free, total = torch.cuda.mem_get_info()
    return torch, {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "memory_total_bytes": total,
        "memory_free_bytes": free,
    }


def _solve_timed(torch: Any, spec: Any) -> tuple[Any, float, int]:
    from byteleap.proof import solve

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    solution = solve(spec, "torch", "cuda")  # its tree's copy to the host synchronises
    return solution, solution.compute_s, int(torch.cuda.max_memory_allocated())


def _verify(spec: Any, solution: Any) -> bool:
    from byteleap.proof import answer_reveal, commit, draw_reveal, verify

    commitment = commit(solution, lambda payload: b"s")
    request = draw_reveal(spec, commitment)
    verdict = verify(
        spec,
        commitment,
        request,
        answer_reveal(solution, request),
        now=spec.issued_at,
        verify_signature=lambda payload, signature: True,
    )
    return bool(verdict.ok)


def measure(torch: Any, profile_name: str, args: argparse.Namespace, memory: int) -> dict[str, Any]:
    from byteleap.proof import Profile, deadline_s, issue_challenge, size_challenge, time_range

    profile = Profile(profile_name)
    now = time.time()
    calibration = issue_challenge(CALIBRATION_N, profile, now=now, ttl_s=3600.0)
    _solve_timed(torch, calibration)  # warm-up: kernel compilation, cuBLAS handles
    calibration_s = min(_solve_timed(torch, calibration)[1] for _ in range(3))
    flops = args.flops or calibration.work_flops / calibration_s
    size = size_challenge(
        profile,
        device_flops=flops,
        memory_bytes=memory,
        target_s=args.target_s,
        resident_fraction=args.resident_fraction,
    )
    spec = issue_challenge(size.n, profile, now=now, ttl_s=3600.0, products=size.products)
    torch.cuda.empty_cache()
    times, peaks = [], []
    solution = None
    for _ in range(args.repeats):
        del solution  # its product would double the device memory the next solve needs
        torch.cuda.empty_cache()
        solution, seconds, peak = _solve_timed(torch, spec)
        times.append(seconds)
        peaks.append(peak)
    deadline = deadline_s(size)
    return {
        "profile": profile_name,
        "calibration": {"n": CALIBRATION_N, "best_s": calibration_s, "tflops": flops / 1e12},
        "time_range_s": time_range(
            profile,
            device_flops=flops,
            memory_bytes=memory,
            resident_fraction=args.resident_fraction,
        ),
        "n": size.n,
        "products": size.products,
        "work_flops": size.work_flops,
        "working_set_bytes": size.working_set_bytes,
        "working_set_of_memory": size.working_set_bytes / memory,
        "expected_s": size.expected_s,
        "deadline_s": deadline,
        "solve_s": times,
        "best_s": min(times),
        "median_s": statistics.median(times),
        "median_over_expected": statistics.median(times) / size.expected_s,
        "within_deadline": max(times) <= deadline,
        "pipeline_tflops": size.work_flops / min(times) / 1e12,
        "peak_allocated_bytes": max(peaks),
        "peak_over_working_set": max(peaks) / size.working_set_bytes,
        "peak_of_memory": max(peaks) / memory,
        "peak_reserved_bytes": int(torch.cuda.max_memory_reserved()),
        "verify_ok": _verify(spec, solution),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    parser.add_argument("--profiles", default="cuda-f16,cuda-i8")
    parser.add_argument("--target-s", type=float, default=2.0)
    parser.add_argument("--resident-fraction", type=float, default=0.75)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flops", type=float, default=None, help="claimed flop/s (else measured)")
    parser.add_argument(
        "--memory-bytes", type=int, default=None, help="claimed memory (else the GPU's total)"
    )
    args = parser.parse_args(argv)
    found = _gpu()
    if isinstance(found, dict):
        print(json.dumps(found))
        return 0
    torch, report = found
    memory = args.memory_bytes or report["memory_total_bytes"]
    report |= {"memory_bytes": memory, "target_s": args.target_s, "results": []}
    for name in filter(None, args.profiles.split(",")):
        try:
            report["results"].append(measure(torch, name, args, memory))
        except Exception as exc:  # report and go on: one profile must not hide the other
            report["results"].append({"profile": name, "error": repr(exc)})
        torch.cuda.empty_cache()
    report["ok"] = all(r.get("verify_ok") and r.get("within_deadline") for r in report["results"])
    print(json.dumps(report, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
