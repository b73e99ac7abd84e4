"""Dataset side: the cost of ``import datasets_emotions``, then preparation time and memory as the number of clips
grows.

1. Import: ``import datasets_emotions`` in a fresh process, from this tree ("after") and from git checkouts of
   earlier revisions made in the same run (``git worktree add``; default: ``68fbd5a~2``, main before the light
   labels module, and ``68fbd5a``, main when issue 12 was taken). Printed: wall time of the import, the process's
   peak resident memory, whether torch / transformers got imported, and the ratios to "after" (min over
   ``--import-repeats`` interleaved runs: the least disturbed run on a shared machine).
2. Preparation: builds trees of tiny real clips (copies of 8 generated H.264/AAC mp4s) in two layouts:
   * ``meld``: three CSVs + clip folders; preparation probes every clip with PyAV (header read);
   * ``emotions`` raw-video layout: ``metadata.csv`` + clips (probed the same way since issue 12);
   and prepares them with ``datasets_emotions.load_dataset(..., num_proc=1 | 2)``, each size in a fresh process.
   Printed per layout and size: preparation time with 1 process, with 2 processes and their ratio (baseline: 1
   process, same run), and the peak resident memory added by preparing with 1 process (VmHWM minus the
   resident size before preparing), whose ratio to the smallest size must stay near 1 (no clip is held in memory).

    .venv/bin/python benchmarks/bench_datasets.py [--sizes 500 1000 2000] [--before 68fbd5a~2 68fbd5a]
    .venv/bin/python benchmarks/bench_datasets.py --skip-prepare     # the import comparison only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import REPO, peak_rss_bytes, rss_bytes, write_clip_once  # this tree first on sys.path

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
EMOTIONS = ["excitation", "fear", "neutral", "relaxation", "sadness", "tension"]
MELD_EMOTIONS = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]


def make_sources(folder: str, count: int = 8) -> list[str]:
    from datasets_emotions.synthetic_media import tone

    rng = np.random.default_rng(0)
    return [write_clip_once(os.path.join(folder, f"src{i}.mp4"),
                       rng.integers(0, 255, size=(24, 48, 64, 3), dtype=np.uint8), fps=12,
                       audio=tone(200 + 50 * i, 2.0, 16000), sample_rate=16000, gop_size=12) for i in range(count)]


def make_meld(root: str, sources: list[str], clips: int) -> None:
    splits = (("train_sent_emo.csv", "train_splits", 0.8), ("dev_sent_emo.csv", "dev_splits_complete", 0.1),
              ("test_sent_emo.csv", "output_repeated_splits_test", 0.1))
    for csv_name, folder, share in splits:
        os.makedirs(os.path.join(root, folder))
        lines = [HEADER]
        for k in range(int(clips * share)):
            dialogue, utterance = divmod(k, 10)
            lines.append(f'{k},"line {k}",Ross,{MELD_EMOTIONS[k % 7]},neutral,{dialogue},{utterance},1,1,"0","1"\n')
            shutil.copyfile(sources[k % len(sources)], os.path.join(root, folder, f"dia{dialogue}_utt{utterance}.mp4"))
        with open(os.path.join(root, csv_name), "w") as handle:
            handle.writelines(lines)


def make_emotions(root: str, sources: list[str], clips: int) -> None:
    os.makedirs(os.path.join(root, "videos"))
    lines = ["file_name,label,split\n"]
    for k in range(clips):
        shutil.copyfile(sources[k % len(sources)], os.path.join(root, "videos", f"v{k:05d}.mp4"))
        lines.append(f"videos/v{k:05d}.mp4,{EMOTIONS[k % 6]},{'train' if k % 10 < 8 else 'test'}\n")
    with open(os.path.join(root, "metadata.csv"), "w") as handle:
        handle.writelines(lines)


def measure(name: str, data_dir: str, work: str) -> dict:
    """Runs in a fresh process: prepare with 1 process (time, peak memory added), then with 2 (time)."""
    import datasets

    import datasets_emotions
    from datasets_emotions import load_dataset

    assert datasets_emotions.__file__.startswith(REPO), datasets_emotions.__file__
    datasets.disable_progress_bars()
    before = rss_bytes()
    start = time.perf_counter()
    one = load_dataset(name, data_dir=data_dir, cache_dir=os.path.join(work, "c1"), num_proc=None)
    one_s = time.perf_counter() - start
    peak_added = peak_rss_bytes() - before
    start = time.perf_counter()
    two = load_dataset(name, data_dir=data_dir, cache_dir=os.path.join(work, "c2"), num_proc=2)
    two_s = time.perf_counter() - start
    rows = sum(part.num_rows for part in one.values())
    assert rows == sum(part.num_rows for part in two.values())
    return {"rows": rows, "one_s": one_s, "two_s": two_s, "peak_added_mb": peak_added / 2**20}


IMPORT_PROBE = """
import json, sys, time
start = time.perf_counter()
import datasets_emotions
seconds = time.perf_counter() - start
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"seconds": seconds, "peak_mb": int(status["VmHWM"].split()[0]) / 1024,
                  "file": datasets_emotions.__file__,
                  "heavy": [name for name in ("torch", "transformers", "torchvision", "av") if name in sys.modules]}))
"""


def import_cost(tree: str) -> dict:
    """``import datasets_emotions`` from ``tree`` in a fresh process (``tree`` first on the path)."""
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], check=True, capture_output=True, text=True, env=env,
                         cwd=tempfile.gettempdir()).stdout.strip().splitlines()[-1]
    result = json.loads(out)
    assert result["file"].startswith(os.path.realpath(tree)) or result["file"].startswith(tree), result["file"]
    return result


def compare_imports(revisions: list[str], repeats: int) -> None:
    """Import cost of ``datasets_emotions`` at each git revision (temporary worktrees) and in this tree."""
    with tempfile.TemporaryDirectory() as work:
        trees = {}
        for revision in revisions:
            path = os.path.join(work, revision.replace("~", "_").replace("/", "_"))
            subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "--quiet", path, revision], check=True)
            trees[revision] = path
        trees["this tree"] = REPO
        try:
            runs = {name: [] for name in trees}
            for _ in range(repeats):  # interleaved, so that load drifts hit every tree alike
                for name, tree in trees.items():
                    runs[name].append(import_cost(tree))
        finally:
            for path in list(trees.values())[:-1]:
                subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", path], check=False)
    after = min(run["seconds"] for run in runs["this tree"]), min(run["peak_mb"] for run in runs["this tree"])
    print(f"{'import datasets_emotions':<24} {'min s':>7} {'median s':>9} {'peak MB':>8} {'s / after':>9} "
          f"{'MB / after':>10}  heavy modules loaded")
    for name, results in runs.items():
        seconds = sorted(run["seconds"] for run in results)
        peak = min(run["peak_mb"] for run in results)
        print(f"{name:<24} {seconds[0]:>7.2f} {seconds[len(seconds) // 2]:>9.2f} {peak:>8.0f} "
              f"{seconds[0] / after[0]:>9.1f} {peak / after[1]:>10.1f}  {', '.join(results[0]['heavy']) or '-'}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--before", nargs="*", default=["68fbd5a~2", "68fbd5a"],
                        help="git revisions whose import cost is measured next to this tree's")
    parser.add_argument("--import-repeats", type=int, default=5)
    parser.add_argument("--skip-prepare", action="store_true", help="only the import comparison")
    parser.add_argument("--measure", nargs=3, metavar=("NAME", "DATA_DIR", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    compare_imports(args.before, args.import_repeats)
    if args.skip_prepare:
        return
    import warnings

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as work:
        sources = make_sources(work)
        print(f"{'layout':<9} {'clips':>6} {'1 proc s':>9} {'2 proc s':>9} {'2p/1p':>6} {'peak +MB':>9} "
              f"{'peak/first':>10}")
        for name, make in (("meld", make_meld), ("emotions", make_emotions)):
            first_peak = None
            for size in args.sizes:
                data_dir = os.path.join(work, f"{name}{size}")
                make(data_dir, sources, size)
                out = subprocess.run([sys.executable, __file__, "--measure", name, data_dir, data_dir + "_cache"],
                                     check=True, capture_output=True, text=True,
                                     env={**os.environ, "PYTHONPATH": REPO},  # this tree, not an installed copy
                                     ).stdout.strip().splitlines()[-1]
                result = json.loads(out)
                first_peak = first_peak or result["peak_added_mb"]
                print(f"{name:<9} {result['rows']:>6} {result['one_s']:>9.2f} {result['two_s']:>9.2f} "
                      f"{result['two_s'] / result['one_s']:>6.2f} {result['peak_added_mb']:>9.1f} "
                      f"{result['peak_added_mb'] / first_peak:>10.2f}", flush=True)
                shutil.rmtree(data_dir)
                shutil.rmtree(data_dir + "_cache", ignore_errors=True)


if __name__ == "__main__":
    main()
