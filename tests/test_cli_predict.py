"""`avcpnet predict` over folders of generated good, silent and corrupt clips, with a tiny model."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip
from modeling_avcpnet import AVCPNetConfig
from modeling_avcpnet.apps import cli
from modeling_avcpnet.inference import predict, result_files
from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification
from modeling_avcpnet.pipeline_avcpnet import AVCPNetPipeline, save_for_pipeline
from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("predict")
    checkpoint, model, processor = tiny_checkpoint["folder"], tiny_checkpoint["model"], tiny_checkpoint["processor"]
    config = model.config

    videos = root / "videos"
    (videos / "nested").mkdir(parents=True)
    good = [
        write_clip(videos / "a_good.mp4", moving_square_frames(24, 48, 64), fps=12, audio=tone(330, 2.0, 16000),
                   sample_rate=16000),
        write_clip(videos / "nested" / "b_good.mov", moving_square_frames(20, 64, 48, color=(30, 90, 240)), fps=10,
                   audio=tone(1200, 2.0, 16000, tempo_hz=2), sample_rate=16000),
        write_clip(videos / "c_good.mp4", moving_square_frames(30, 48, 64, color=(200, 200, 40), speed=4), fps=15,
                   audio=tone(600, 2.0, 16000), sample_rate=16000),
    ]
    silent = write_clip(videos / "d_silent.mp4", moving_square_frames(24, 48, 64, color=(10, 240, 10)), fps=12)
    corrupt = videos / "e_corrupt.mp4"
    corrupt.write_text("this is not a video")
    empty = videos / "nested" / "f_empty.mp4"
    empty.write_bytes(b"")
    (videos / "notes.txt").write_text("not a video extension: never listed")

    one_frame = write_clip(videos / "g_one_frame.mp4", moving_square_frames(1, 48, 64), fps=12,
                           audio=tone(440, 1.0, 16000), sample_rate=16000)

    classifier = AVCPNetPipeline(model=model, processor=processor, device="cpu")
    expected = {path: classifier(path, top_k=6) for path in [*good, silent, one_frame]}
    branches = {}  # the branch heads' own labels, from the model's outputs
    for path in expected:
        with torch.no_grad():
            outputs = model(**processor(videos=[path], return_tensors="pt"))
        visual = config.id2label[int(outputs.visual_logits.argmax())]
        audio = config.id2label[int(outputs.audio_logits.argmax())] if path != silent else ""
        branches[path] = (visual, audio)
    return {"root": root, "checkpoint": checkpoint, "videos": str(videos), "good": good, "silent": silent,
            "one_frame": one_frame, "corrupt": str(corrupt), "empty": str(empty), "expected": expected,
            "branches": branches, "labels": list(config.id2label.values()), "config": config}


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_rows(rows, setup):
    by_path = {row["path"]: row for row in rows}
    assert len(rows) == len(by_path) == 7  # one row per video file; notes.txt is not a video
    for path, result in setup["expected"].items():
        row = by_path[path]
        assert not row["error"], row["error"]
        assert row["label"] == result["label"]
        assert row["polarity_of_label"] == setup["config"].label2polarity[result["label"]]
        assert float(row["score"]) == pytest.approx(result["score"], abs=5e-5)
        assert str(row["score"]) == str(round(result["score"], 4))  # rounded to 4 decimals
        for polarity, value in result["polarity_scores"].items():
            assert float(row[f"polarity_prob_{polarity}"]) == pytest.approx(value, abs=5e-5)
        for item in result["labels"]:
            assert float(row[f"prob_{item['label']}"]) == pytest.approx(item["score"], abs=5e-5)
        assert (row["visual_label"], row["audio_label"] or "") == setup["branches"][path]
        assert bool(row["audio_score"]) == (path != setup["silent"])
        assert str(row["has_audio"]) == str(path != setup["silent"])
        assert bool(row["warning"]) == (path == setup["one_frame"])
        assert row["precision"] == "float32" and len(row["model_id"]) == 16
    for bad in (setup["corrupt"], setup["empty"]):
        row = by_path[bad]
        assert os.path.basename(bad) in row["error"]  # the processor's message names the file
        assert not row["label"] and not row["score"]


def test_folder_with_good_silent_and_corrupt_clips(setup, tmp_path):
    """The installed console command, end to end."""
    output = tmp_path / "predictions.csv"
    command = [os.path.join(os.path.dirname(sys.executable), "avcpnet"), "predict", setup["videos"],
               "--model", setup["checkpoint"], "--output", str(output), "--batch_size", "4", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_csv(output)
    assert list(rows[0]) == result_files.output_columns(setup["labels"])
    check_rows(rows, setup)
    summary = done.stdout.strip().splitlines()[-1]
    assert ("7 files, 5 labelled (1 without audio, 1 with a warning: see the warning column), 2 unreadable"
            in summary and "e_corrupt.mp4" in summary)
    assert "1 non-video files in the folders not labelled (notes.txt" in summary
    assert "g_one_frame.mp4: all sampled frames are the same image" in done.stderr


def test_jsonl_with_workers_and_globs(setup, tmp_path):
    output = tmp_path / "predictions.jsonl"
    patterns = [os.path.join(setup["videos"], "*.mp4"), os.path.join(setup["videos"], "nested")]
    code = cli.main(["predict", *patterns, "--model", setup["checkpoint"], "--output", str(output),
                     "--num_workers", "2", "--batch_size", "3", "--quiet", "--device", "cpu"])
    assert code == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    check_rows(rows, setup)
    assert {row["has_audio"] for row in rows if not row["error"]} == {True, False}  # real JSON booleans


def test_resume_skips_finished_files(setup, tmp_path, monkeypatch):
    output = tmp_path / "predictions.csv"
    argv = ["predict", setup["videos"], "--model", setup["checkpoint"], "--output", str(output), "--batch_size", "2",
            "--quiet", "--device", "cpu"]
    assert cli.main(argv) == 0
    complete = output.read_text()
    lines = complete.splitlines(keepends=True)
    # Simulate an interruption: the header, three finished rows, and half of the fourth row.
    output.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    finished = [row["path"] for row in read_csv(tmp_path / "predictions.csv")[:3]]

    decoded = []
    original = predict.ClipDataset.__getitem__

    def counting_getitem(self, index):
        decoded.append(self.paths[index])
        return original(self, index)

    monkeypatch.setattr(predict.ClipDataset, "__getitem__", counting_getitem)
    assert cli.main(argv) == 0
    assert sorted(decoded) == sorted(set(predict.find_videos([setup["videos"]])[0]) - set(finished))
    assert output.read_text() == complete  # same rows, same order, the cut row rewritten once

    decoded.clear()
    assert cli.main(argv) == 0  # everything finished: nothing is decoded again, and that is a success
    assert decoded == []
    assert output.read_text() == complete

    # --retry_errors decodes again only the files whose rows hold an error.
    assert cli.main([*argv, "--retry_errors"]) == 0
    assert sorted(decoded) == sorted([setup["corrupt"], setup["empty"]])
    check_rows(read_csv(output), setup)


def test_exit_codes_and_missing_processor(setup, tmp_path):
    bad_folder = tmp_path / "bad"
    bad_folder.mkdir()
    (bad_folder / "x.mp4").write_text("garbage")
    output = tmp_path / "bad.csv"
    argv = ["predict", str(bad_folder), "--model", setup["checkpoint"], "--output", str(output), "--quiet",
            "--device", "cpu"]
    assert cli.main(argv) == 1  # nothing could be processed
    assert read_csv(output)[0]["error"]
    assert cli.main(["predict", str(tmp_path / "nothing_here_*.mp4"), "--model", setup["checkpoint"], "--output",
                     str(output), "--quiet"]) == 2

    model_only = tmp_path / "model_only"
    AVCPNetForVideoClassification(AVCPNetConfig.tiny()).save_pretrained(model_only)
    (model_only / "processor_config.json").unlink()  # save_pretrained writes one: a folder that lost it
    with pytest.raises(SystemExit, match="no processor files.*processor_config.json"):
        cli.main(["predict", setup["videos"], "--model", str(model_only), "--output", str(tmp_path / "o.csv")])


def test_find_videos_files_folders_and_patterns(setup, tmp_path):
    paths, warnings = predict.find_videos([setup["good"][0], setup["videos"], os.path.join(setup["videos"], "*.txt"),
                                       str(tmp_path / "missing.mp4"), str(tmp_path / "none_*.mp4")])
    assert paths[0] == os.path.abspath(setup["good"][0])  # given order, no duplicates
    assert len(paths) == len(set(paths)) == 7 + 2  # the 7 videos, notes.txt (matched explicitly), missing.mp4
    assert os.path.join(setup["videos"], "notes.txt") in paths and str(tmp_path / "missing.mp4") in paths
    assert warnings == [f"no files match {tmp_path / 'none_*.mp4'}"]
    # issue 22.1: a missing folder is said to be missing, not counted as an unreadable file
    assert predict.find_videos([str(tmp_path / "videos") + os.sep, str(tmp_path / "more")]) == (
        [], [f"{tmp_path / 'videos'}{os.sep}: no such file or folder", f"{tmp_path / 'more'}: no such file or folder"])


def test_resume_refuses_another_model(setup, tmp_path):
    """Same labels, other weights: resuming into the old output is refused; --overwrite starts afresh."""
    output = tmp_path / "predictions.csv"
    argv = ["predict", *(str(path) for path in setup["good"][:1]), "--output", str(output), "--quiet",
            "--device", "cpu"]
    assert cli.main([*argv, "--model", setup["checkpoint"]]) == 0
    torch.manual_seed(1)
    config = AVCPNetConfig.tiny()
    other = save_for_pipeline(AVCPNetForVideoClassification(config).eval(), AVCPNetProcessor.from_model_config(config),
                              tmp_path / "other")
    before = output.read_text()
    assert cli.main([*argv, "--model", other]) == 2
    assert output.read_text() == before
    assert cli.main([*argv, "--model", other, "--overwrite"]) == 0
    assert read_csv(output)[0]["model_id"] != read_csv_text(before)[0]["model_id"]


def read_csv_text(text):
    return list(csv.DictReader(text.splitlines()))


def test_torchrun_two_processes_shard_resume_and_merge(setup, tmp_path):
    """`torchrun --nproc_per_node 2 -m modeling_avcpnet.apps.cli predict`: each process labels half of the files into
    its part (one part already holds a row, as if a first run was interrupted), rank 0 merges: one row per file."""
    single = tmp_path / "single.csv"
    assert cli.main(["predict", setup["videos"], "--model", setup["checkpoint"], "--output", str(single),
                     "--quiet", "--device", "cpu"]) == 0
    expected = {row["path"]: row for row in read_csv(single)}

    output = tmp_path / "merged.csv"
    interrupted = read_csv(single)[2]  # a previous run's part: this file must not be labelled again
    with open(result_files.part_path(str(output), 1), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(interrupted), lineterminator="\n")
        writer.writeheader()
        writer.writerow(interrupted)
        handle.write(result_files.output_columns(setup["labels"])[0][:2])  # and half a row, cut by the interruption
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [torchrun, "--nproc_per_node", "2", "--standalone", "-m", "modeling_avcpnet.apps.cli", "predict",
               setup["videos"], "--model", setup["checkpoint"], "--output", str(output), "--quiet",
               "--batch_size", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_csv(output)
    assert sorted(row["path"] for row in rows) == sorted(expected)  # no duplicate, no missing row
    for row in rows:  # the same predictions as one process (other batches: equal up to float rounding)
        for key, value in row.items():
            if key.endswith(("score", "_positive", "_neutral", "_negative")) or key.startswith("prob_"):
                assert float(value or 0) == pytest.approx(float(expected[row["path"]][key] or 0), abs=2e-4)
            else:
                assert value == expected[row["path"]][key], key
    assert not result_files.existing_parts(str(output))  # parts merged away
    assert done.stdout.count("avcpnet predict:") == 1  # rank 0 reports for all
    assert "7 files, 4 labelled" in done.stdout and "1 already in the output (skipped)" in done.stdout


def test_version_and_one_line_errors_with_debug(monkeypatch, capsys):
    """Issue 22.5: `avcpnet --version` exists; a user error is one line, its traceback behind --debug."""
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("avcpnet 0.1.0 (transformers ")

    def fail(args):
        raise OSError("[Errno 28] No space left on device:\n'out.csv'")

    monkeypatch.setattr(predict, "predict_command", fail)
    argv = ["predict", "x.mp4", "--model", "m", "--output", "out.csv"]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == ("avcpnet: error: [Errno 28] No space left on device: 'out.csv' "
                                       "(--debug shows the traceback)\n")
    with pytest.raises(OSError, match="No space left"):
        cli.main([*argv, "--debug"])
