#!/usr/bin/env python
"""Train, evaluate and publish AV-CPNet (or the MER 2023 system) with the Hugging Face `Trainer`.

One script for every scale: a laptop (`python train_hf.py configs/sample.yaml`), several CPU processes
(`torchrun --nproc_per_node 2 train_hf.py ... --use_cpu`), GPUs and nodes (`accelerate launch --config_file
configs/accelerate_multi_gpu.yaml train_hf.py ...`). Arguments come from the command line, from a YAML/JSON file,
or from a file followed by command-line overrides (`train_hf.py configs/sample.yaml --output_dir runs/x`).

The recipe in the shape of transformers' `examples/pytorch/*/run_*_classification.py`: arguments, data, model and
processor, `Trainer`, train/evaluate/predict/push. The library parts live in `modeling_avcpnet.training`:
`EPCETrainer` (the paper's multi-task EP-CE loss with exact gradient accumulation, per-branch loss logs, confusion
matrices and per-class reports), metrics (accuracy, WA-F1, macro F1, UAR, branch accuracies), the model card, and
one `TrainingTask` per model type (`--model_type mer2023` trains `MER2023ForEmotionValence` on deep features of
`--audio_backbone`/`--vision_backbone`, computed once with `datasets.map` and cached, and reports the challenge
metric `weighted_F1 - 0.25 * valence MSE`). Fine-tuning on another label set re-initialises the heads the model
class declares and takes the new dataset's polarity map.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any, Optional

import transformers
from transformers import set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints

from modeling_avcpnet.training import (
    EPCETrainer,
    build_config_and_model,
    build_processor,
    dataset_label_maps,
    format_results_table,
    get_task,
    load_splits,
    parse_arguments,
)
from modeling_avcpnet.training.arguments import adapt_training_arguments
from modeling_avcpnet.training.metrics import strip_prefix
from modeling_avcpnet.training.user_errors import USER_ERRORS, one_line

logger = logging.getLogger("train_hf")

# USER_ERRORS: errors that mean "the run was asked something impossible", not "the code is broken" (data folders,
# labels, arguments, missing files, the Hub unreachable or offline); `one_line` gives each its cause and fix.


def setup_logging(training_args) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if training_args.should_log else logging.WARNING)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_warning()


def resolve_resume(training_args) -> Optional[str]:
    """--resume_from_checkpoint last|latest|true -> the newest complete checkpoint in output_dir."""
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last", "latest"):
        resume = last_complete_checkpoint(training_args.output_dir)
        if resume is None:
            raise ValueError(f"--resume_from_checkpoint {training_args.resume_from_checkpoint}: no checkpoint in "
                             f"{training_args.output_dir}")
    return resume


def last_complete_checkpoint(output_dir: str) -> Optional[str]:
    """The newest checkpoint of `output_dir` whose save finished: transformers' checkpoints by step number
    (`sort_checkpoints`; only the names `get_last_checkpoint` takes, `checkpoint-N`), newest first, plus a completeness
    check. The Trainer writes `trainer_state.json` last, so a run killed while saving leaves a folder without a
    readable one; it is skipped with a warning."""
    for checkpoint in reversed(sort_checkpoints(output_dir)) if os.path.isdir(output_dir) else []:
        if not re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-\d+", os.path.basename(checkpoint)):
            continue
        try:
            with open(os.path.join(checkpoint, "trainer_state.json")) as handle:
                json.load(handle)
            return checkpoint
        except (OSError, ValueError) as error:
            logger.warning("skipping %s: its save did not finish (%s)", checkpoint, error)
    return None


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    # ---- arguments ----
    model_args, data_args, training_args = parse_arguments(argv)
    setup_logging(training_args)
    resume = resolve_resume(training_args)
    task = get_task(model_args.model_type)
    adapt_training_arguments(training_args)
    set_seed(training_args.seed)

    # ---- data ----
    with training_args.main_process_first(desc="generating/loading the dataset"):
        dataset, splits = load_splits(data_args, training_args)
    id2label, label2polarity = dataset_label_maps(splits.get(data_args.train_split) or next(iter(splits.values())))
    with training_args.main_process_first(desc="preparing the splits"):
        splits, config_fields = task.prepare_splits(model_args, data_args, splits)

    # ---- model and processor ----
    config, model, old_labels = build_config_and_model(model_args, id2label, label2polarity, config_fields)
    processor = build_processor(model_args, data_args, config) if task.has_processor else task.saved_processor()
    logger.info("model: %s parameters, labels %s, polarity %s", f"{model.num_parameters():,}",
                list(id2label.values()), getattr(config, "label2polarity", None))

    def prepared(split: str, training: bool = False):
        if split not in splits:
            return None
        rows = splits[split]
        if data_args.media_cache_dir and task.has_processor:  # only the splits this run reads
            from modeling_avcpnet.training.media_cache import cache_split_media

            with training_args.main_process_first(desc=f"re-encoding the {split} clips into the media cache"):
                rows = cache_split_media(rows, processor, data_args.media_cache_dir,
                                         num_proc=data_args.media_cache_num_proc)
        seed = training_args.data_seed or training_args.seed  # of the training augmentation
        return task.trainer_dataset(rows, processor, training, seed=seed)

    train_dataset = prepared(data_args.train_split, training=True) if training_args.do_train else None
    eval_dataset = prepared(data_args.eval_split)
    test_dataset = prepared(data_args.test_split) if training_args.do_predict else None

    # ---- trainer ----
    trainer = EPCETrainer(
        model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
        processor=processor, task=task, compute_metrics=task.compute_metrics(config),
        data_collator=task.data_collator,
    )

    # ---- train / evaluate / predict ----
    results: dict[str, dict[str, float]] = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume)
        # model + processor (+ custom code) into output_dir; `_internal_call` keeps save_model from pushing now: the
        # push comes once, at the end, with the evaluation results in the model card.
        trainer.save_model(_internal_call=True)
        if task.data_collator is not None:
            train_result.metrics["train_skipped_clips"] = len(trainer.skipped_clips.get("train", ()))
        trainer.log_metrics("train", train_result.metrics)
        trainer.save_metrics("train", train_result.metrics)
        trainer.save_state()
    if training_args.do_eval and eval_dataset is not None:
        metrics = trainer.evaluate(eval_dataset=eval_dataset, metric_key_prefix="eval")
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results[data_args.eval_split] = strip_prefix(metrics, "eval")
    if training_args.do_predict and test_dataset is not None:
        prediction = trainer.predict(test_dataset, metric_key_prefix="test")
        trainer.log_metrics("test", prediction.metrics)
        trainer.save_metrics("test", prediction.metrics)
        results[data_args.test_split] = strip_prefix(prediction.metrics, "test")

    # ---- card and push ----
    trainer.card_context = dict(
        dataset_name=data_args.dataset_name, dataset_config=data_args.dataset_config, results=results,
        license=model_args.hub_license, finetuned_from=model_args.model_name_or_path,
    )
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"{task.display_name} trained on {data_args.dataset_name}")

    output_dir = os.path.abspath(training_args.output_dir)
    # {phase: distinct clips (of this process) that failed to decode and were left out}, phase = train/eval/test
    skipped_clips = {phase: len(messages) for phase, messages in trainer.skipped_clips.items() if messages}
    print(f"process {training_args.process_index}/{training_args.world_size} finished", flush=True)
    if trainer.is_world_process_zero():
        if results:
            print("\n" + format_results_table(results, model_args.model_type))
        if skipped_clips:
            print(f"\nSkipped clips that could not be decoded: {skipped_clips} (see the warnings above)")
        if training_args.do_train:
            print(f"\nSaved model{' and processor' if processor is not None else ''} to {output_dir}")
    return {"results": results, "output_dir": output_dir, "global_step": trainer.state.global_step,
            "trainer": trainer, "old_labels": old_labels, "skipped_clips": skipped_clips}


def run(argv: Optional[list[str]] = None) -> int:
    """`main` for the command line: a user error (bad argument, missing data folder, unreachable Hub, ...) ends
    the run with one clear message and exit status 1 instead of a traceback (TRAIN_HF_TRACEBACK=1 shows it)."""
    try:
        main(argv)
    except USER_ERRORS as error:
        if os.environ.get("TRAIN_HF_TRACEBACK"):
            raise
        print(f"train_hf.py: error: {one_line(error)}", file=sys.stderr)
        _leave_process_group(wait_for_others=False)
        return 1
    _leave_process_group(wait_for_others=True)
    return 0


def _leave_process_group(wait_for_others: bool) -> None:
    """End a multi-process run cleanly: (after a successful run) wait until every process is done, then destroy the
    process group. Exiting with a live gloo group lets its C++ worker threads outlive the interpreter and abort the
    process (SIGABRT, "terminate called without an active exception") while the others still write reports. After
    an error there is no barrier: the other processes may never reach it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            if wait_for_others:
                dist.barrier()
        finally:
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(run())
