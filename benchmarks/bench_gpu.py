"""Benchmark: AV-CPNet training and inference throughput on a GPU (or a CPU), model-only and end to end.

Model-only: `EPCETrainer` steps (AdamW, bf16 autocast or fp32, eager or `torch_compile`) over ready tensors, and
inference forwards; clips/s, achieved TFLOP/s (FLOPs counted by `torch.utils.flop_counter` on the same config) and
share of the matmul peak measured in the same run, peak memory. End to end: the real `train_hf.py` data path
(builder-style rows of generated mp4 files -> `AVCPNetTask.trainer_dataset` -> processor in DataLoader workers ->
`EPCETrainer` step), once reading the source clips and once through the media cache
(`modeling_avcpnet/training/media_cache.py`); each printed with its ratio to model-only training. The input
pipeline alone (`--parts data`): the same DataLoader without a model step, in clips/s and per worker. Also the largest
difference between the processor's outputs on a source clip and on its cached copy, and peak training memory with
and without gradient checkpointing.

Clips: `--seconds` long, 640x360 landscape and 720x1280 portrait (one in four), H.264 + AAC 44.1 kHz, written once
into `--clip_dir` by all cores.

Usage (GPU):  python benchmarks/bench_gpu.py --config paper --batch 32 --workers 15
      (CPU):  python benchmarks/bench_gpu.py --config tiny --device cpu --batch 2 --steps 2 --clips 4 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context

import _common  # noqa: F401 - this tree on sys.path

import numpy as np
import torch

from bench_train import StepTimes, random_examples
from modeling_avcpnet import AVCPNetConfig, AVCPNetProcessor
from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification


def say(*parts) -> None:
    print(*parts, flush=True)


# ---- the machine ---------------------------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype) -> float:
    """Measured dense matmul throughput in TFLOP/s (the denominator of 'share of peak')."""
    size = 8192 if device.startswith("cuda") else 1024
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    synchronize(device)
    repeats = 20 if device.startswith("cuda") else 5
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return repeats * 2 * size**3 / (time.perf_counter() - start) / 1e12


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return _common.peak_rss_bytes() / 2**30


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        _common.reset_peak_rss()


# ---- inputs --------------------------------------------------------------------------------------------------------


def batch_of(config, size: int, device: str) -> dict:
    examples = random_examples(config, size)
    return {key: torch.stack([example[key] for example in examples]).to(device) for key in examples[0]}


def count_flops(config, device: str, train: bool) -> float:
    """FLOPs of one clip: forward (inference) or forward + backward (training)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = AVCPNetForVideoClassification(config).to(device).train(train)
    inputs = batch_of(config, 1, device)
    with FlopCounterMode(display=False) as counter:
        if train:
            model(**inputs).loss.backward()
        else:
            with torch.no_grad():
                model(**{key: value for key, value in inputs.items() if key != "labels"})
    return float(counter.get_total_flops())


def write_one_clip(job) -> str:
    path, seconds, height, width, seed = job
    from datasets_emotions.synthetic_media import moving_square_frames, tone

    fps = 30

    def frames():
        count = int(fps * seconds)
        frames = moving_square_frames(count, height, width, speed=width / count)
        noise = np.random.default_rng(seed).integers(-12, 12, (height, width, 3), dtype=np.int16)  # film grain
        for frame in frames:  # in place, a frame at a time: a 30-s portrait clip is 8 GB as int16 in one go
            frame[:] = np.clip(frame.astype(np.int16) + noise, 0, 255)
        return frames

    return _common.write_clip_once(path, frames, fps=fps, audio=tone(220 + 40 * seed, seconds, 44100, tempo_hz=2),
                                   sample_rate=44100)


def make_clips(folder: str, count: int, seconds: float) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    jobs = []
    for index in range(count):
        height, width = (1280, 720) if index % 4 == 3 else (360, 640)
        jobs.append((os.path.join(folder, f"clip_{index:04d}_{width}x{height}_{seconds:g}s.mp4"), seconds, height,
                     width, index))
    # spawn: a process forked from one whose torch has started its thread pool can deadlock on a lock held then
    with get_context("spawn").Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        return pool.map(write_one_clip, jobs)


# ---- one measurement: training steps through EPCETrainer -----------------------------------------------------------


def clips_per_second(step_ends: list[float], batch: int, warmup: int) -> float:
    """From the end times of the steps: batch / the median duration of the steps after `warmup`."""
    steps = np.diff(step_ends[warmup - 1:])  # from the end of the last warm-up step
    return batch / float(np.median(steps)) if len(steps) else float("nan")


def make_trainer(config, train_dataset, output_dir: str, device: str, dtype: str, batch: int, max_steps: int,
                 workers: int, compiled: bool = False, gradient_checkpointing: bool = False, callbacks=()):
    """The `EPCETrainer` of `configs/emotions_gpu.yaml`'s settings (fused AdamW, pinned memory, persistent
    workers, prefetch 2) for `config`, on `train_dataset`."""
    from transformers import TrainingArguments

    from modeling_avcpnet.training.tasks import get_task
    from modeling_avcpnet.training.trainer import EPCETrainer

    task = get_task("avcpnet")
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config)
    args = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=batch, max_steps=max_steps, learning_rate=1e-4,
        bf16=dtype == "bf16", use_cpu=device == "cpu", report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0, dataloader_pin_memory=device != "cpu",
        dataloader_prefetch_factor=2 if workers > 0 else None, remove_unused_columns=False,
        torch_compile=compiled, gradient_checkpointing=gradient_checkpointing, optim="adamw_torch_fused"
        if device != "cpu" else "adamw_torch", tf32=True if device != "cpu" else None,
    )
    return EPCETrainer(model=model, args=args, train_dataset=train_dataset, task=task,
                       data_collator=task.data_collator, callbacks=list(callbacks))


def train_steps(config, train_dataset, device: str, dtype: str, batch: int, steps: int, workers: int,
                compiled: bool = False, gradient_checkpointing: bool = False, warmup: int = 2,
                regional: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as output_dir:
        timer = StepTimes()
        # Accelerate's regional compilation (each repeated block compiled once, the glue eager): what
        # `ACCELERATE_DYNAMO_USE_REGIONAL_COMPILATION=true train_hf.py --torch_compile true` does.
        os.environ["ACCELERATE_DYNAMO_USE_REGIONAL_COMPILATION"] = "true" if regional else "false"
        trainer = make_trainer(config, train_dataset, output_dir, device, dtype, batch, warmup + steps, workers,
                               compiled, gradient_checkpointing, callbacks=[timer])
        reset_peak_memory(device)
        started = time.perf_counter()
        trainer.train()
        return {"clips_per_s": clips_per_second(timer.times, batch, warmup), "peak_gib": peak_memory_gib(device),
                "first_steps_s": timer.times[warmup - 1] - started if len(timer.times) >= warmup else float("nan")}


def inference(config, device: str, dtype: str, batch: int, steps: int, compiled: bool) -> dict:
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).to(device).eval()
    run = torch.compile(model) if compiled else model
    inputs = {key: value for key, value in batch_of(config, batch, device).items() if key != "labels"}
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bf16")
    reset_peak_memory(device)
    times = []
    with torch.no_grad(), autocast:
        started = time.perf_counter()
        run(**inputs)  # warm-up (and compilation)
        synchronize(device)
        first = time.perf_counter() - started
        for _ in range(steps):
            start = time.perf_counter()
            logits = run(**inputs).logits
            synchronize(device)
            times.append(time.perf_counter() - start)
    return {"clips_per_s": batch / statistics.median(times), "peak_gib": peak_memory_gib(device), "first_s": first,
            "top1": logits.float().argmax(-1).cpu()}


def attention_kernels(config, device: str, batch: int) -> dict:
    """Which SDPA kernels one bf16 training step of the model runs (profiler event counts)."""
    from torch.profiler import ProfilerActivity, profile

    model = AVCPNetForVideoClassification(config).to(device).train()
    inputs = batch_of(config, batch, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as profiler, torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
        model(**inputs).loss.backward()
    counts: dict[str, int] = {}
    for event in profiler.key_averages():
        if event.key.startswith(("aten::_scaled_dot_product", "aten::_efficient_attention", "aten::_flash_attention")):
            counts[event.key.replace("aten::", "")] = event.count
    return counts


# ---- the benchmark -------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="paper", choices=["paper", "tiny"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="timed steps after 2 warm-up steps")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clip_dir", default=os.path.join(tempfile.gettempdir(), "avcpnet_bench_gpu_clips"))
    parser.add_argument("--parts", default="model,compile,e2e,memory",
                        help="comma-separated: model (eager fp32/bf16 train + infer), compile (compiled bf16 "
                             "inference), compile_train (compiled bf16 training), compile_train_regional (the same, "
                             "Accelerate's regional compilation), data (the training DataLoader alone), e2e, "
                             "memory")
    parser.add_argument("--memory_batches", help="comma-separated batch sizes of the memory part (default: 16 "
                                                 "on the paper config); two or more also give the memory per clip")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    device = args.device
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # what --tf32 / the Trainer's default give on Ampere+
        torch.backends.cudnn.allow_tf32 = True
    config = AVCPNetConfig() if args.config == "paper" else AVCPNetConfig.tiny()
    results: dict = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
                     "torch": torch.__version__, "config": args.config, "batch": args.batch}
    import transformers

    results["transformers"] = transformers.__version__
    peaks = {name: matmul_peak(device, dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    results["matmul_peak_tflops"] = peaks
    say(f"{results['device']}, torch {torch.__version__}, transformers {transformers.__version__}, {os.cpu_count()} "
        f"cores; matmul peak fp32 {peaks['fp32']:.1f} / bf16 {peaks['bf16']:.1f} TFLOP/s; {args.config} config, "
        f"batch {args.batch}")
    flops_forward = count_flops(config, device, train=False)
    flops_train = count_flops(config, device, train=True)
    results["gflops_per_clip"] = {"forward": flops_forward / 1e9, "train_step": flops_train / 1e9}
    say(f"FLOPs per clip: forward {flops_forward / 1e9:.1f} G, training step {flops_train / 1e9:.1f} G")

    def report(name: str, measured: dict, flops: float, dtype: str) -> None:
        tflops = measured["clips_per_s"] * flops / 1e12
        measured.update(tflops=tflops, share_of_peak=tflops / peaks[dtype])
        results[name] = {key: value for key, value in measured.items() if key != "top1"}
        extra = "".join(f", {key} {value:.1f} s" for key, value in measured.items() if key.startswith("first"))
        say(f"{name:<34} {measured['clips_per_s']:8.1f} clips/s  {tflops:7.2f} TFLOP/s  "
            f"{100 * tflops / peaks[dtype]:5.1f} % of {dtype} peak  peak memory {measured['peak_gib']:.1f} GiB{extra}")

    ready = random_examples(config, args.batch * 4)  # a map-style dataset
    if "model" in parts:
        results["attention_kernels"] = attention_kernels(config, device, min(args.batch, 8))
        say(f"attention kernels in one bf16 training step: {results['attention_kernels']}")
        for dtype in ("fp32", "bf16"):
            report(f"model-only train {dtype} eager", train_steps(config, ready, device, dtype, args.batch,
                                                                  args.steps, 0), flops_train, dtype)
        eager = {}
        for dtype in ("fp32", "bf16"):
            eager[dtype] = inference(config, device, dtype, args.batch, args.steps, compiled=False)
            report(f"inference {dtype} eager", eager[dtype], flops_forward, dtype)
    if "memory" in parts:
        batches = [int(size) for size in args.memory_batches.split(",")] if args.memory_batches else \
            [16 if args.config == "paper" else args.batch]
        for checkpointing in (True, False):  # the smaller first: on a CPU, freed memory may stay in the process
            peaks = []
            for batch in batches:
                measured = train_steps(config, random_examples(config, batch), device, "bf16", batch, 1, 0,
                                       gradient_checkpointing=checkpointing, warmup=1)
                results[f"memory_batch{batch}_checkpointing_{checkpointing}"] = measured
                peaks.append(measured["peak_gib"])
                say(f"bf16 training batch {batch}, gradient checkpointing {checkpointing}: peak memory "
                    f"{measured['peak_gib']:.2f} GiB")
            if len(batches) > 1:  # what each further clip costs (the fixed part: weights, optimizer, runtime)
                per_clip = (peaks[-1] - peaks[0]) / (batches[-1] - batches[0])
                results[f"memory_per_clip_checkpointing_{checkpointing}"] = per_clip
                say(f"  per clip: {per_clip:.3f} GiB; fixed: {peaks[0] - per_clip * batches[0]:.2f} GiB")
    splits = prepared_splits(args, config, results) if parts & {"e2e", "data"} else None
    if "data" in parts:
        input_pipeline(args, config, device, results, splits)
    if "e2e" in parts:
        end_to_end(args, config, device, results, report, flops_train, splits)
    # compiling takes minutes: after the parts a GPU check cut at its time limit must not lose
    if "compile" in parts:
        compiled = inference(config, device, "bf16", args.batch, args.steps, compiled=True)
        report("inference bf16 compiled", compiled, flops_forward, "bf16")
        if "model" in parts:
            for name, reference in (("bf16 eager", eager["bf16"]), ("fp32 eager", eager["fp32"])):
                say(f"  compiled bf16 / {name}: {compiled['clips_per_s'] / reference['clips_per_s']:.2f}x, top-1 "
                    f"agreement {float((compiled['top1'] == reference['top1']).float().mean()):.3f}")
    if "compile_train" in parts:
        report("model-only train bf16 compiled", train_steps(config, ready, device, "bf16", args.batch, args.steps,
                                                             0, compiled=True), flops_train, "bf16")
    if "compile_train_regional" in parts:  # last: the slowest to compile
        report("model-only train bf16 regional compile", train_steps(
            config, ready, device, "bf16", args.batch, args.steps, 0, compiled=True, regional=True), flops_train, "bf16")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1, default=str)
    return results


def prepared_splits(args, config, results) -> tuple:
    """The generated clips as a builder-style split, and the same split through the media cache (prepared once;
    instant when already there), with the largest difference between the processor's outputs on a source clip and
    on its cached copy. Returns `(processor, source split, cached split)`."""
    import datasets

    from modeling_avcpnet.training.media_cache import cache_split_media

    started = time.perf_counter()
    clips = make_clips(args.clip_dir, args.clips, args.seconds)
    say(f"{len(clips)} clips of {args.seconds:g} s (640x360, one in four 720x1280) ready in "
        f"{time.perf_counter() - started:.1f} s")
    rows = datasets.Dataset.from_dict({"video": clips, "audio": [None] * len(clips),
                                       "label": [index % config.num_labels for index in range(len(clips))]})
    processor = AVCPNetProcessor.from_model_config(config, decode_threads=1)  # as configs/emotions_gpu.yaml
    started = time.perf_counter()
    cached = cache_split_media(rows, processor, os.path.join(args.clip_dir, f"cache_{config.image_size}"))
    seconds = time.perf_counter() - started
    results["media_cache_prepare_clips_per_s"] = len(clips) / seconds
    say(f"media cache: {len(clips)} clips prepared in {seconds:.1f} s ({len(clips) / seconds:.1f} clips/s on "
        f"{os.cpu_count()} cores; instant when already there)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker (the MFCC's float sums depend on the thread count)
    reference = processor(videos=clips[:2], training=True, generator=torch.Generator().manual_seed(1),
                          return_tensors="pt")
    copy = processor(videos=cached["video"][:2], mfcc=list(cached.with_format("numpy")["mfcc"][:2]), training=True,
                     generator=torch.Generator().manual_seed(1), return_tensors="pt")
    torch.set_num_threads(threads)
    difference = float((reference["pixel_values_videos"] - copy["pixel_values_videos"]).abs().max())
    results["media_cache_max_abs_diff"] = difference
    say(f"media cache vs source, same random draws: pixel max abs diff {difference:.4f} (lossless: 0), MFCC "
        f"equal: {torch.equal(reference['input_features'], copy['input_features'])}")
    return processor, rows, cached


def end_to_end(args, config, device, results, report, flops_train, splits) -> None:
    from modeling_avcpnet.training.tasks import get_task

    processor, rows, cached = splits
    task = get_task("avcpnet")
    model_only = results.get("model-only train bf16 eager", {}).get("clips_per_s")
    for name, split in (("source clips", rows), ("media cache", cached)):
        dataset = task.trainer_dataset(split, processor, training=True, seed=0)
        measured = train_steps(config, dataset, device, "bf16", args.batch, args.steps, args.workers)
        report(f"end-to-end bf16, {name}", measured, flops_train, "bf16")
        if model_only:
            say(f"  end-to-end / model-only: {measured['clips_per_s'] / model_only:.2f}")
            results[f"end-to-end bf16, {name}"]["ratio_to_model_only"] = measured["clips_per_s"] / model_only


def input_pipeline(args, config, device, results, splits) -> None:
    """The training DataLoader alone (`EPCETrainer.get_train_dataloader`: the processor in `--workers` workers,
    the collator, pinned memory, the copy to the device), no model step: what the input pipeline can deliver, and
    per worker, to set against model-only training."""
    from modeling_avcpnet.training.tasks import get_task

    processor, rows, cached = splits
    task = get_task("avcpnet")
    warmup = max(1, args.workers)  # each worker's first batch includes its start
    for name, split in (("source clips", rows), ("media cache", cached)):
        dataset = task.trainer_dataset(split, processor, training=True, seed=0)
        with tempfile.TemporaryDirectory() as output_dir:
            trainer = make_trainer(config, dataset, output_dir, device, "bf16", args.batch, 1, args.workers)
            times = []
            for _, batch in zip(range(warmup + args.steps), _endless(trainer.get_train_dataloader())):
                for value in batch.values():  # the copy to the device, as the trainer's step does
                    if isinstance(value, torch.Tensor):
                        value.to(device, non_blocking=True)
                synchronize(device)
                times.append(time.perf_counter())
        rate = args.steps * args.batch / (times[-1] - times[warmup - 1])
        per_worker = rate / max(1, args.workers)
        results[f"input pipeline, {name}"] = {"clips_per_s": rate, "clips_per_s_per_worker": per_worker,
                                              "workers": args.workers}
        say(f"input pipeline alone, {name}, {args.workers} workers: {rate:.1f} clips/s ({per_worker:.1f} per "
            f"worker)")
        model_only = results.get("model-only train bf16 eager", {}).get("clips_per_s")
        if model_only:
            say(f"  input pipeline / model-only training: {rate / model_only:.2f}")


def _endless(loader):
    while True:
        yield from loader


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
