"""The paper's ablations (tables 7, 8, 9) on the generated `sample` set, with a tiny AV-CPNet, a few seeds each.

- table 7: audio only, visual only, audio+visual (concat fusion, no CAF, plain CE), + CAF layer, + SF layer
  (sum fusion), + EP-CE loss (gammas 0.5);
- table 8: the five fusion types with the CAF layer, plain CE (as in the paper, where table 8's ConcatFusion and
  SumFusion rows equal table 7's "+ CAF" and "+ SF" rows); EW-SumFusion is the plain element-wise sum (`ew_sum`),
  GatedFusion gates the visual features by the audio ones;
- table 9: EP-CE gammas (pos : neu : neg) with sum fusion and CAF.

Every variant is the library default structure (the public code's: SF layer straight to the classes, CAF over the
segment features, VAANet's audio head, visual dropout 0.5) with the row's changes. Each audio-visual variant runs
with each unimodal-head placement of `--unimodal_heads` (default `sf_terms` only: the SF layer's per-modality terms on
the post-CAF features, the public code's; `separate`: a classifier per modality on the pre-CAF features); the
single-modality rows have no fusion, so the placement does not apply to them. Table `S` (not run by default) takes
the default structure apart: each row puts back one piece of the structure this package had before.

Every run trains with `EPCETrainer` (the same loss, optimiser and schedule as `train_hf.py`). To fit dozens of runs
into minutes on a CPU, the clips are processed once (eval-mode processor: centred snippets, no augmentation) and
the runs train on those tensors; the numbers therefore compare variants with each other, they are not the main
job's numbers (which trains with augmentation). Writes markdown tables of test accuracy per seed, its mean +-
standard deviation, the number of collapsed seeds (test accuracy < `--collapse_below`, default 0.8: the sample set
is built so that neither modality alone exceeds 0.5, so a fusion run below 0.8 has not learned the fusion), and the
mean +- std of WA-F1 and each branch's accuracy.

    .venv/bin/python benchmarks/ablate.py --seeds 1 2 3 4 5 --epochs 8 --output benchmarks/ablation_results.md
    .venv/bin/python benchmarks/ablate.py --unimodal_heads sf_terms separate   # both placements
    .venv/bin/python benchmarks/ablate.py --tables 9 --seeds 1     # one table, one seed
    .venv/bin/python benchmarks/ablate.py --tables S               # the default structure taken apart
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch

import _common  # noqa: F401  (the repository on sys.path)

from modeling_avcpnet.training import (  # noqa: E402
    EPCETrainer,
    ModelArguments,
    build_config_and_model,
    compute_metrics_fn,
    dataset_label_maps,
)

G0, G5 = "0,0,0", "0.5,0.5,0.5"
# name -> (config overrides, gammas)
VARIANTS = {
    "Audio": ({"modalities": "audio"}, G0),
    "Visual": ({"modalities": "visual"}, G0),
    "Audio + Visual": ({"fusion_type": "concat", "use_cross_attention": False}, G0),
    "+ CAF layer": ({"fusion_type": "concat", "use_cross_attention": True}, G0),
    "+ SF layer": ({"fusion_type": "sum", "use_cross_attention": True}, G0),
    "+ EP-CE loss": ({"fusion_type": "sum", "use_cross_attention": True}, G5),
    "ConcatFusion": ({"fusion_type": "concat", "use_cross_attention": True}, G0),
    "EW-SumFusion": ({"fusion_type": "ew_sum", "use_cross_attention": True}, G0),
    "NeuralFusion": ({"fusion_type": "neural", "use_cross_attention": True}, G0),
    "GatedFusion": ({"fusion_type": "gated", "use_cross_attention": True}, G0),
    "SumFusion": ({"fusion_type": "sum", "use_cross_attention": True}, G0),
    "0 : 0 : 0": ({"fusion_type": "sum", "use_cross_attention": True}, G0),
    "0 : 0.3 : 0.5": ({"fusion_type": "sum", "use_cross_attention": True}, "0,0.3,0.5"),
    "0.3 : 0.3 : 0.3": ({"fusion_type": "sum", "use_cross_attention": True}, "0.3,0.3,0.3"),
    "0.4 : 0.4 : 0.4": ({"fusion_type": "sum", "use_cross_attention": True}, "0.4,0.4,0.4"),
    "0.5 : 0.5 : 0.5": ({"fusion_type": "sum", "use_cross_attention": True}, G5),
    # Table S: the default (public) structure, then one piece of the previous structure put back per row.
    "public structure (default)": ({"fusion_type": "sum", "use_cross_attention": True}, G5),
    "SF to C1 + shared classifier": ({"fusion_type": "sum", "use_cross_attention": True,
                                      "fusion_output": "hidden"}, G5),
    "CAF on pooled vectors": ({"fusion_type": "sum", "use_cross_attention": True, "caf_sequence": "pooled"}, G5),
    "plain audio head": ({"fusion_type": "sum", "use_cross_attention": True, "audio_head": "linear"}, G5),
    "no visual dropout": ({"fusion_type": "sum", "use_cross_attention": True, "visual_dropout_prob": 0.0}, G5),
    "previous structure (all four)": ({"fusion_type": "sum", "use_cross_attention": True, "fusion_output": "hidden",
                                       "caf_sequence": "pooled", "audio_head": "linear",
                                       "visual_dropout_prob": 0.0}, G5),
}
TABLES = {
    "7": ["Audio", "Visual", "Audio + Visual", "+ CAF layer", "+ SF layer", "+ EP-CE loss"],
    "8": ["ConcatFusion", "EW-SumFusion", "NeuralFusion", "GatedFusion", "SumFusion"],
    "9": ["0 : 0 : 0", "0 : 0.3 : 0.5", "0.3 : 0.3 : 0.3", "0.4 : 0.4 : 0.4", "0.5 : 0.5 : 0.5"],
    "S": ["public structure (default)", "SF to C1 + shared classifier", "CAF on pooled vectors", "plain audio head",
          "no visual dropout", "previous structure (all four)"],
}
TITLES = {"7": "Table 7: components", "8": "Table 8: fusion strategies (with CAF, plain CE)",
          "9": "Table 9: EP-CE gammas pos : neu : neg (sum fusion, CAF)",
          "S": "Structure: the public structure (default) and the previous one, piece by piece (sum, CAF, EP-CE 0.5)"}


def processed_split(split, processor):
    from datasets_emotions import with_processor

    data = with_processor(split, processor, training=False)
    batch = data[0:len(data)]
    return [{key: value[i] for key, value in batch.items()} for i in range(len(data))]


def run_variant(overrides, gammas, seed, train, test, id2label, label2polarity, args):
    from transformers import TrainingArguments, set_seed

    set_seed(seed)
    model_args = ModelArguments(config_preset="tiny", config_overrides=json.dumps(overrides),
                                         ep_ce_gammas=gammas)
    config, model, _ = build_config_and_model(model_args, id2label, label2polarity)
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
            num_train_epochs=args.epochs, learning_rate=args.learning_rate, weight_decay=0.02,
            lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.01}, warmup_steps=0.05,
            seed=seed, report_to="none", save_strategy="no", eval_strategy="no", logging_steps=10**6,
            disable_tqdm=True, remove_unused_columns=False, use_cpu=True, dataloader_num_workers=0,
        )
        trainer = EPCETrainer(model=model, args=training_args, train_dataset=train,
                                       compute_metrics=compute_metrics_fn(config.num_labels))
        trainer.train()
        metrics = trainer.evaluate(test, metric_key_prefix="test")
    return {key[5:]: value for key, value in metrics.items() if key.startswith("test_")}




def variant_settings(name, placement):
    """The config overrides and gammas of variant `name` with unimodal-head `placement` (audio-visual only)."""
    overrides, gammas = VARIANTS[name]
    if overrides.get("modalities", "audio_visual") == "audio_visual":
        overrides = dict(overrides, unimodal_head=placement)
    return overrides, gammas


def per_seed(values):
    return " ".join(f"{100 * value:.1f}" for value in values) if values else "-"


def mean_spread(values):
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="*", default=["7", "8", "9"], choices=list(TABLES))
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    parser.add_argument("--collapse_below", type=float, default=0.8,
                        help="a seed whose test accuracy is below this counts as collapsed (audio-visual rows)")
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--unimodal_heads", nargs="*", default=["sf_terms"],
                        choices=["sf_terms", "separate"], help="unimodal-head placements to run (config.unimodal_head)")
    parser.add_argument("--variants", nargs="*", default=None,
                        help="run only these rows (names as in the tables), e.g. to split a run over processes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=None, help="also write the markdown here")
    parser.add_argument("--from_logs", nargs="*", default=None,
                        help="train nothing: build the tables from the logs (stdout) of earlier runs, e.g. of one "
                             "run split over processes with --variants (the last run of a name/placement/seed wins)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.from_logs:
        results, test_size = results_from_logs(args.from_logs)
        return write_tables(results, test_size, args, started)

    from datasets_emotions import load_dataset
    from modeling_avcpnet import AVCPNetConfig
    from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor

    sample = load_dataset("sample")
    id2label, label2polarity = dataset_label_maps(sample["train"])
    processor = AVCPNetProcessor.from_model_config(AVCPNetConfig.tiny())
    train, test = processed_split(sample["train"], processor), processed_split(sample["test"], processor)
    print(f"processed {len(train)} train / {len(test)} test clips in {time.perf_counter() - started:.0f} s",
          flush=True)

    results: dict[str, list[dict]] = {}
    wanted = [name for table in args.tables for name in TABLES[table] if not args.variants or name in args.variants]
    for placement in args.unimodal_heads:
        for name in dict.fromkeys(wanted):
            overrides, gammas = variant_settings(name, placement)
            key = json.dumps([overrides, gammas], sort_keys=True)  # identical variants share their runs
            if key in results:
                continue
            results[key] = []
            for seed in args.seeds:
                run_started = time.perf_counter()
                metrics = run_variant(overrides, gammas, seed, train, test, id2label, label2polarity, args)
                results[key].append(metrics)
                print(f"{name} [{placement}] seed {seed}: acc {metrics['accuracy']:.3f} wa-f1 "
                      f"{metrics['wa_f1']:.3f} visual {metrics.get('visual_accuracy', float('nan')):.3f} audio "
                      f"{metrics.get('audio_accuracy', float('nan')):.3f} ({time.perf_counter() - run_started:.0f} s)",
                      flush=True)

    write_tables(results, len(test), args, started)


def results_from_logs(paths):
    """`{variant key: [metrics per seed]}` and the test-split size, from the lines `main` prints per run."""
    runs, test_size = {}, None
    for path in paths:
        for line in Path(path).read_text().splitlines():
            processed = re.match(r"processed \d+ train / (\d+) test clips", line)
            if processed:
                test_size = int(processed.group(1))
            match = RUN_LINE.match(line)
            if not match:
                continue
            name, placement, seed = match["name"], match["placement"], int(match["seed"])
            metrics = {"accuracy": float(match["acc"]), "wa_f1": float(match["wa_f1"])}
            for key in ("visual", "audio"):
                if match[key] != "nan":
                    metrics[f"{key}_accuracy"] = float(match[key])
            runs[(json.dumps(list(variant_settings(name, placement)), sort_keys=True), seed)] = metrics
    results = {}
    for (key, _seed), metrics in sorted(runs.items(), key=lambda item: item[0][1]):
        results.setdefault(key, []).append(metrics)
    return results, test_size


RUN_LINE = re.compile(r"(?P<name>.+) \[(?P<placement>\w+)\] seed (?P<seed>\d+): acc (?P<acc>[\d.]+) wa-f1 "
                      r"(?P<wa_f1>[\d.]+) visual (?P<visual>[\d.]+|nan) audio (?P<audio>[\d.]+|nan)")


def write_tables(results, test_size, args, started):
    lines = [f"Sample set test split ({test_size} clips), tiny AV-CPNet, {args.epochs:g} epochs, batch "
             f"{args.batch_size}, lr {args.learning_rate:g}, seeds {args.seeds}; in %: test accuracy per seed (in "
             f"seed order), mean ± std; collapsed = seeds below {100 * args.collapse_below:g} % (audio-visual rows).",
             ""]
    for table in args.tables:
        lines += [f"**{TITLES[table]}**", "", "| variant | unimodal heads | accuracy per seed | accuracy | collapsed | "
                  "WA-F1 | visual acc | audio acc |", "|---|---|---|---|---|---|---|---|"]
        for name in TABLES[table]:
            for placement in args.unimodal_heads:
                overrides, gammas = variant_settings(name, placement)
                if "unimodal_head" not in overrides and placement != args.unimodal_heads[0]:
                    continue  # single modality: one row
                runs = results.get(json.dumps([overrides, gammas], sort_keys=True))
                if runs is None:  # left out by --variants
                    continue
                column = lambda key: mean_spread([run[key] for run in runs if key in run])  # noqa: E731
                shown = overrides.get("unimodal_head", "-")
                accuracies = [run["accuracy"] for run in runs]
                collapsed = (f"{sum(value < args.collapse_below for value in accuracies)} / {len(accuracies)}"
                             if "unimodal_head" in overrides else "-")
                lines.append(f"| {name} | {shown} | {per_seed(accuracies)} | {column('accuracy')} | {collapsed} | "
                             f"{column('wa_f1')} | {column('visual_accuracy')} | {column('audio_accuracy')} |")
        lines.append("")
    if args.from_logs:
        lines.append(f"Built from the run logs {', '.join(Path(path).name for path in args.from_logs)}.")
    else:
        lines.append(f"Total time {time.perf_counter() - started:.0f} s.")
    text = "\n".join(lines)
    print("\n" + text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
