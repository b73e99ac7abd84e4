"""`benchmarks/bench_gpu.py` runs on a CPU with the tiny config (CI has no GPU): model-only and end-to-end training
through the real data path and that data path alone, with and without the media cache, and reports what the GPU runs are read for."""

from __future__ import annotations

import math
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))


def test_bench_gpu_runs_on_cpu_with_the_tiny_config(tmp_path, capsys):
    import bench_gpu

    results = bench_gpu.main(["--config", "tiny", "--device", "cpu", "--batch", "2", "--steps", "1", "--clips", "2",
                              "--seconds", "1", "--workers", "0", "--parts", "model,data,e2e",
                              "--clip_dir", str(tmp_path / "clips")])
    printed = capsys.readouterr().out
    assert results["gflops_per_clip"]["train_step"] > 2 * results["gflops_per_clip"]["forward"] > 0
    for name in ("model-only train bf16 eager", "inference fp32 eager", "end-to-end bf16, source clips",
                 "end-to-end bf16, media cache"):
        measured = results[name]
        assert measured["clips_per_s"] > 0 and math.isclose(
            measured["tflops"] / results["matmul_peak_tflops"]["bf16" if "bf16" in name else "fp32"],
            measured["share_of_peak"]), name
        assert name in printed
    assert results["end-to-end bf16, media cache"]["ratio_to_model_only"] > 0
    assert results["media_cache_max_abs_diff"] == 0  # lossless RGB
    for name in ("source clips", "media cache"):
        assert results[f"input pipeline, {name}"]["clips_per_s"] > 0
        assert f"input pipeline alone, {name}, 0 workers" in printed
    assert sorted(os.listdir(tmp_path / "clips" / "cache_32")) and "MFCC equal: True" in printed
