"""Training throughput: EPCETrainer against a minimal hand-written PyTorch loop, and time spent waiting for data.

Part 1 (framework overhead): the same tiny AV-CPNet, the same in-memory batches (pre-processed once, so decoding
does not blur the comparison), the same batch size, optimiser (AdamW) and schedule; samples per second over the
steps after a warm-up, measured in the same run, alternating the two loops `--repeats` times. Target: the Trainer
at most 10% slower.

Part 2 (input pipeline): EPCETrainer on the generated `sample` set with the real processor (decode + augment per
step), with 0 and 2 DataLoader workers; the share of the training loop's wall time spent waiting for batches
(inside `get_batch_samples`).

    .venv/bin/python benchmarks/bench_train.py            # defaults below, ~2-3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_train.py --steps 40 --batch_size 16 --workers 0 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

import _common  # noqa: F401  (the repository on sys.path)

from modeling_avcpnet.training import EPCETrainer  # noqa: E402
from modeling_avcpnet import AVCPNetConfig  # noqa: E402
from modeling_avcpnet.loss_avcpnet import compute_multitask_loss  # noqa: E402
from transformers import AutoModelForVideoClassification, TrainerCallback, TrainingArguments  # noqa: E402
from transformers.optimization import get_cosine_schedule_with_warmup  # noqa: E402


def random_examples(config, count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    frames = config.audio_length // config.audio_segments
    return [{
        "pixel_values_videos": torch.randn(config.num_segments, config.frames_per_segment, 3, config.image_size,
                                           config.image_size, generator=generator),
        "input_features": torch.randn(config.audio_segments, frames, config.num_mfcc, generator=generator),
        "audio_mask": torch.tensor(True),
        "labels": torch.tensor(index % config.num_labels),
    } for index in range(count)]


class StepTimes(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def throughput(times, batch_size, warmup):
    """Samples per second over the steps after `warmup` (times = end of each step)."""
    steps = len(times) - 1 - warmup
    return steps * batch_size / (times[-1] - times[warmup])


def hand_loop(config, state_dict, dataset, batch_size, steps, lr, warmup):
    model = AutoModelForVideoClassification.from_config(config)
    model.load_state_dict(state_dict)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.02}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.999))
    scheduler = get_cosine_schedule_with_warmup(optimizer, 1, steps)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    times, step = [], 0
    while step < steps:
        for batch in loader:
            labels = batch.pop("labels")
            outputs = model(**batch)
            loss, _ = compute_multitask_loss(outputs, labels, config, audio_mask=batch["audio_mask"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter())
            step += 1
            if step == steps:
                break
    return throughput(times, batch_size, warmup)


def trainer_loop(config, state_dict, dataset, batch_size, steps, lr, warmup, workers=0, trainer_class=None):
    model = AutoModelForVideoClassification.from_config(config)
    model.load_state_dict(state_dict)
    timer = StepTimes()
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=lr,
            weight_decay=0.02, lr_scheduler_type="cosine", warmup_steps=1, max_grad_norm=1.0, report_to="none",
            use_cpu=True, save_strategy="no", logging_steps=10**6, disable_tqdm=True, remove_unused_columns=False,
            dataloader_num_workers=workers, dataloader_drop_last=True, dataloader_persistent_workers=workers > 0,
        )
        trainer = (trainer_class or EPCETrainer)(model=model, args=args, train_dataset=dataset,
                                                          callbacks=[timer])
        trainer.train()
    trainer.step_times = timer.times
    return throughput(timer.times, batch_size, warmup), trainer


class DataWaitTrainer(EPCETrainer):
    """Times the Trainer's waits for batches (get_batch_samples pulls them from the DataLoader)."""

    data_seconds = 0.0
    loop_started = None

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        start = time.perf_counter()
        if self.loop_started is None:
            self.loop_started = start
        result = super().get_batch_samples(epoch_iterator, num_batches, device)
        self.data_seconds += time.perf_counter() - start
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30, help="optimisation steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each loop")
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2])
    parser.add_argument("--data_steps", type=int, default=20, help="steps of the input-pipeline measurement")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from datasets_emotions import load_dataset, with_processor
    from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor

    config = AVCPNetConfig.tiny()
    state_dict = AutoModelForVideoClassification.from_config(config).state_dict()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, tiny AV-CPNet "
          f"({sum(v.numel() for v in state_dict.values()):,} parameters), batch {args.batch_size}")

    # ---- part 1: framework overhead on identical in-memory batches ----
    dataset = random_examples(config, args.batch_size * 8)  # a list is a map-style dataset
    hand, trainer = [], []
    for _ in range(args.repeats):
        hand.append(hand_loop(config, state_dict, dataset, args.batch_size, args.steps, 1e-3, args.warmup))
        trainer.append(trainer_loop(config, state_dict, dataset, args.batch_size, args.steps, 1e-3,
                                    args.warmup)[0])
    hand_median, trainer_median = statistics.median(hand), statistics.median(trainer)
    print("\n| loop | samples/s (median of %d) | runs |" % args.repeats)
    print("|---|---|---|")
    print(f"| hand-written PyTorch | {hand_median:.1f} | {', '.join(f'{v:.1f}' for v in hand)} |")
    print(f"| EPCETrainer | {trainer_median:.1f} | {', '.join(f'{v:.1f}' for v in trainer)} |")
    print(f"\nEPCETrainer / hand loop throughput ratio: {trainer_median / hand_median:.3f} "
          f"(overhead {100 * (1 - trainer_median / hand_median):+.1f}%; target <= 10%)")

    # ---- part 2: waiting for data with the real processor ----
    sample = load_dataset("sample")
    processor = AVCPNetProcessor.from_model_config(config)
    train = with_processor(sample["train"], processor, training=True)
    print("\n| dataloader workers | samples/s | share of loop time waiting for data |")
    print("|---|---|---|")
    for workers in args.workers:
        speed, run = trainer_loop(config, state_dict, train, args.batch_size, args.data_steps, 1e-3, args.warmup,
                                  workers=workers, trainer_class=DataWaitTrainer)
        # from the first batch request to the end of the last step (the Trainer's setup left out)
        share = run.data_seconds / (run.step_times[-1] - run.loop_started)
        print(f"| {workers} | {speed:.1f} | {100 * share:.0f}% |")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
