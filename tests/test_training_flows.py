"""Issue 11.4 and 11.5, as a user runs `train_hf.py`:

- clips that became unreadable after the dataset was prepared (a 0-byte file, a truncated file) are left out of
  their batches, logged once per file and counted in the results; the run finishes (also when a whole batch fails);
- a run stopped right after its first checkpoint and resumed with `--resume_from_checkpoint last` ends with exactly
  the weights of an uninterrupted run, with 0 and 2 (persistent) DataLoader workers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train_hf
from datasets_emotions import load_dataset
from modeling_avcpnet.training import EPCETrainer
from test_train_hf import _write_seven_label_set, tiny_run_args


def test_clips_unreadable_after_preparation_are_skipped_and_counted(tmp_path, capsys, caplog):
    data_dir, cache = tmp_path / "caer", tmp_path / "cache"
    _write_seven_label_set(data_dir)
    prepared = load_dataset("caer", data_dir=str(data_dir), cache_dir=str(cache))
    assert len(prepared["train"]) == 7 and len(prepared["validation"]) == 7

    # After preparation: one training clip emptied, one training and one validation clip truncated.
    empty, truncated = data_dir / "train" / "Fear" / "0002.mp4", data_dir / "train" / "Sad" / "0005.mp4"
    broken_eval = data_dir / "validation" / "Happy" / "0003.mp4"
    empty.write_bytes(b"")
    for path in (truncated, broken_eval):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])

    result = train_hf.main([
        "--config_preset", "tiny", "--dataset_name", "caer", "--data_dir", str(data_dir),
        "--dataset_cache_dir", str(cache), "--output_dir", str(tmp_path / "out"), "--do_train", "--do_eval",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "1",  # batches of one: some fail entirely
        "--per_device_eval_batch_size", "4", "--dataloader_num_workers", "2", "--use_cpu", "--report_to", "none",
        "--save_strategy", "no", "--disable_tqdm", "true", "--seed", "3",
    ])
    assert result["global_step"] == 14  # every batch was a step, the two empty ones included
    assert result["skipped_clips"] == {"train": 2, "eval": 1}
    metrics = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert metrics["train_skipped_clips"] == 2 and metrics["eval_skipped_clips"] == 1
    matrix = json.loads((tmp_path / "out" / "eval_confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == 6  # the 6 readable validation clips were evaluated

    warned = [record.getMessage() for record in caplog.records if "cannot be decoded" in record.getMessage()]
    for path in (empty, truncated, broken_eval):  # one warning per file, naming it, over two epochs
        assert sum(str(path) in message or path.name in message for message in warned) == 1, (path, warned)
    assert "Skipped clips that could not be decoded: {'train': 2, 'eval': 1}" in capsys.readouterr().out


class _StopAfterFirstSave(Exception):
    pass


def _final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "model.safetensors")


# With persistent workers the resumed run builds the epoch-2 iterator afresh where the uninterrupted run reuses its
# iterator; a base seed drawn from torch's global RNG there would shift the model's dropout masks (the default visual
# dropout 0.5) from epoch 2 on: EPCETrainer gives the DataLoader a generator of its own. Both dropout settings run.
# The media cache (the GPU input pipeline: re-encoded clips and the MFCC column) must keep resume exact too.
@pytest.mark.parametrize("workers, dropout, media_cache", [(0, None, False), (2, 0.0, False), (2, None, False),
                                                           (2, None, True)])
def test_resume_after_the_first_checkpoint_gives_the_same_weights(workers, dropout, media_cache, tmp_path,
                                                                  monkeypatch):
    cache = tmp_path / "cache"
    extra = ["--do_train", "--save_strategy", "steps", "--save_steps", "2", "--dataloader_num_workers", str(workers)]
    if workers:
        extra += ["--dataloader_persistent_workers", "true"]
    if media_cache:
        extra += ["--media_cache_dir", str(tmp_path / "media"), "--media_cache_num_proc", "2"]
    if dropout is not None:
        extra += ["--config_overrides", json.dumps({"visual_dropout_prob": dropout})]
    uninterrupted = tmp_path / "uninterrupted"
    train_hf.main(tiny_run_args(uninterrupted, cache, *extra))

    interrupted = tmp_path / "interrupted"
    save_checkpoint = EPCETrainer._save_checkpoint

    def save_then_stop(self, *args, **kwargs):  # as a kill right after the first checkpoint was written
        save_checkpoint(self, *args, **kwargs)
        raise _StopAfterFirstSave

    with monkeypatch.context() as patch:
        patch.setattr(EPCETrainer, "_save_checkpoint", save_then_stop)
        with pytest.raises(_StopAfterFirstSave):
            train_hf.main(tiny_run_args(interrupted, cache, *extra))
    assert sorted(path.name for path in interrupted.glob("checkpoint-*")) == ["checkpoint-2"]  # mid-epoch 1
    assert not (interrupted / "model.safetensors").exists()
    resumed = train_hf.main(tiny_run_args(interrupted, cache, *extra, "--resume_from_checkpoint", "last"))
    assert resumed["global_step"] == 6

    expected, got = _final_weights(uninterrupted), _final_weights(interrupted)
    assert expected.keys() == got.keys()
    for name in expected:  # tolerance 0: the same examples, crops and dropout masks in the same order
        assert torch.equal(expected[name], got[name]), name
    assert os.path.getsize(interrupted / "model.safetensors") > 0
    if media_cache:  # the runs read the re-encoded copies
        assert sorted(path.suffix for path in (tmp_path / "media").iterdir()) == [".mp4"] * 12
