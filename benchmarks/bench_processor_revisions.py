"""AVCPNetProcessor of this tree against the same class at an earlier git revision, on the same clip, in one run.

Each revision's files are extracted with `git archive` into a temporary folder; every measurement runs in a fresh
subprocess importing that folder's `modeling_avcpnet`, and the revisions alternate round by round, so that the load
from other jobs hits both alike. Each subprocess calls the processor once to warm up, then alternately in eval and
training mode. Reported: wall seconds and CPU seconds (`time.process_time`, all threads of the process: on a loaded
machine the steadier figure) per call, min and median, and the ratio this tree / the revision. The outputs of the
eval calls are compared too (they must be equal: same frames, same transform).

    .venv/bin/python benchmarks/bench_processor_revisions.py --revision d73e6db --clip /tmp/avcpnet_bench/clip_720x1280_25s.mp4

(`benchmarks/bench_processor.py` writes that clip into /tmp/avcpnet_bench on its first run.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MEASURE = """
import hashlib, json, sys, time, warnings
import torch
from modeling_avcpnet import AVCPNetProcessor
clip, calls = sys.argv[1], int(sys.argv[2])
processor = AVCPNetProcessor()
evaluation = processor(videos=[clip])  # warm-up; also the output to compare
digest = hashlib.sha1(evaluation["pixel_values_videos"].numpy().tobytes()
                      + evaluation["input_features"].numpy().tobytes()).hexdigest()
wall, cpu = [], []
for call in range(calls):
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    processor(videos=[clip], training=bool(call % 2))
    wall.append(time.perf_counter() - start_wall)
    cpu.append(time.process_time() - start_cpu)
print(json.dumps({"wall": wall, "cpu": cpu, "digest": digest}))
"""


def extract(revision: str, folder: str) -> None:
    archive = subprocess.run(["git", "-C", REPO, "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)


def measure(tree: str, clip: str, calls: int) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["PYTHONPATH"] = tree
    done = subprocess.run([sys.executable, "-c", MEASURE, clip, str(calls)], cwd=tree, env=environment,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", required=True, help="the git revision to compare with (e.g. main, a commit)")
    parser.add_argument("--clip", default="/tmp/avcpnet_bench/clip_720x1280_25s.mp4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4, help="timed calls per subprocess (eval, train, ...)")
    args = parser.parse_args()
    if not os.path.isfile(args.clip):
        raise SystemExit(f"{args.clip} does not exist: run benchmarks/bench_processor.py once, or pass --clip")
    with tempfile.TemporaryDirectory() as earlier:
        extract(args.revision, earlier)
        trees = {args.revision: earlier, "this tree": REPO}
        results = {name: {"wall": [], "cpu": [], "digest": set()} for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                measured = measure(tree, args.clip, args.calls)
                for key in ("wall", "cpu"):
                    results[name][key] += measured[key]
                results[name]["digest"].add(measured["digest"])
    print(f"{os.path.basename(args.clip)}: seconds per processor call ({args.rounds} rounds x {args.calls} calls)")
    for name, result in results.items():
        print(f"  {name:>12}: wall min {min(result['wall']):.2f} median {statistics.median(result['wall']):.2f}, "
              f"cpu min {min(result['cpu']):.2f} median {statistics.median(result['cpu']):.2f}")
    new, old = results["this tree"], results[args.revision]
    for key in ("wall", "cpu"):
        print(f"  this tree / {args.revision} ({key}): min {min(new[key]) / min(old[key]):.2f}x, "
              f"median {statistics.median(new[key]) / statistics.median(old[key]):.2f}x")
    same = new["digest"] == old["digest"] and len(new["digest"]) == 1
    print(f"  eval outputs {'identical' if same else 'DIFFER'} ({sorted(new['digest'] | old['digest'])})")


if __name__ == "__main__":
    main()
