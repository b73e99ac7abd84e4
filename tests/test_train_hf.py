"""train_hf.py: the EP-CE Trainer, reports, fine-tuning to another label set, Hub folder, resume, 2 processes.

One tiny AV-CPNet is trained once per session on a tiny generated `sample` set (12 train / 6 validation / 6 test
clips) and reused; the multi-process and resume tests run the script as subprocesses, like a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import train_hf
from modeling_avcpnet.labels import POLARITIES
from modeling_avcpnet.training import (
    EPCETrainer,
    build_config_and_model,
    classification_heads,
    classification_metrics,
    dataset_label_maps,
    format_results_table,
    parse_arguments,
)
from modeling_avcpnet.training.arguments import as_float_mapping

from fresh_process import run_without_package

REPO = Path(__file__).resolve().parents[1]
SAMPLE_KWARGS = {"clips_per_class_train": 2, "clips_per_class_validation": 1, "clips_per_class_test": 1,
                 "noisy_train": 0, "noisy_validation": 0, "noisy_test": 0, "duration": 1.0}
N_TRAIN, BATCH, EPOCHS = 12, 4, 2
EXPECTED_STEPS = -(-N_TRAIN // BATCH) * EPOCHS


def tiny_run_args(output_dir, cache_dir, *extra):
    return [
        "--config_preset", "tiny", "--dataset_name", "sample", "--dataset_cache_dir", str(cache_dir),
        "--dataset_kwargs", json.dumps(SAMPLE_KWARGS), "--output_dir", str(output_dir),
        "--per_device_train_batch_size", str(BATCH), "--per_device_eval_batch_size", "8",
        "--num_train_epochs", str(EPOCHS), "--learning_rate", "1e-3", "--logging_steps", "1",
        "--report_to", "none", "--dataloader_num_workers", "0", "--use_cpu", "--disable_tqdm", "true",
        "--seed", "1", *extra,
    ]


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets_cache")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, sample_cache):
    """Train + evaluate + predict + 'push' once; the upload call is intercepted and its folder kept."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoUrl

    output_dir = tmp_path_factory.mktemp("run")
    uploads = []

    def fake_create_repo(self, repo_id, **kwargs):
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def fake_upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, **kwargs):
        # the network call: keep a copy of exactly what would be uploaded instead
        staged = tmp_path_factory.mktemp("upload")
        shutil.copytree(folder_path, staged, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*ignore_patterns))
        uploads.append({"repo_id": repo_id, "folder": staged})
        return None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HfApi, "create_repo", fake_create_repo)
        patch.setattr(HfApi, "upload_folder", fake_upload_folder)
        result = train_hf.main(tiny_run_args(
            output_dir, sample_cache, "--do_train", "--do_eval", "--do_predict", "--save_strategy", "no",
            "--push_to_hub", "--hub_model_id", "org/name", "--hub_strategy", "end",
        ))
    result["uploads"] = uploads
    return result


# ---------------------------------------------------------------------------------------------------------------


def test_arguments_from_yaml_with_command_line_overrides(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("config_preset: tiny\nlearning_rate: 0.5\nep_ce_gammas: '0,0.5,1'\n"
                      "lr_scheduler_kwargs: {min_lr_rate: 0.01}\noutput_dir: a\n")
    model_args, data_args, training_args = parse_arguments([str(config), "--output_dir", "b"])
    assert model_args.config_preset == "tiny" and training_args.learning_rate == 0.5
    assert training_args.output_dir == "b" and training_args.lr_scheduler_kwargs == {"min_lr_rate": 0.01}
    assert as_float_mapping(model_args.ep_ce_gammas, POLARITIES, "g") == {
        "positive": 0.0, "neutral": 0.5, "negative": 1.0}
    # the shipped configs parse
    for shipped in ("sample.yaml", "emotions.yaml"):
        _, _, shipped_args = parse_arguments([str(REPO / "configs" / shipped)])
        assert shipped_args.weight_decay == 0.02 and not shipped_args.remove_unused_columns
    config.write_text("learning_rte: 0.5\n")
    with pytest.raises(ValueError, match="unknown arguments.*learning_rte"):
        parse_arguments([str(config)])


def test_refuses_to_select_the_best_checkpoint_on_the_test_split():
    """Issue 14.5: selecting the best epoch on the split reported as the final test inflates the test numbers."""
    with pytest.raises(ValueError, match="also the final test split"):
        parse_arguments([str(REPO / "configs" / "emotions.yaml"), "--eval_split", "test"])
    _, data_args, training_args = parse_arguments([str(REPO / "configs" / "emotions.yaml")])
    assert training_args.load_best_model_at_end and training_args.do_predict
    assert data_args.eval_split == "validation" and data_args.test_split == "test"


def test_user_errors_end_with_one_clear_line(sample_cache, tmp_path):
    """A wrong data_dir, best-on-test selection and a push with the Hub offline: exit status 1, one message,
    no traceback."""
    push = tiny_run_args(tmp_path / "push", sample_cache, "--do_train", "--max_steps", "1",
                         "--push_to_hub", "--hub_model_id", "org/name")
    # issue 22.2: the network down during a push (a closed local port as the Hub), not only HF_HUB_OFFLINE=1
    network_down = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_not_a_token"}
    cases = {
        "does not exist": (["configs/sample.yaml", "--dataset_name", "caer", "--data_dir", str(tmp_path / "missing")],
                           {}),
        "final test split": (["configs/sample.yaml", "--eval_split", "test"], {}),
        "unknown command-line arguments: ['--fusion_typo', 'sum'] (did you mean fusion_typo -> fusion_type?":
            (["configs/sample.yaml", "--fusion_typo", "sum"], {}),
        "HF_HUB_OFFLINE is set": (push, {}),
        "could not reach the Hugging Face Hub at http://127.0.0.1:9 to push": (push, network_down),
    }
    for expected, (arguments, env) in cases.items():
        done = subprocess.run([sys.executable, "train_hf.py", *arguments, "--output_dir", str(tmp_path / "out")],
                              cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env})
        assert done.returncode == 1, (expected, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        (error,) = [line for line in done.stderr.splitlines() if line.startswith("train_hf.py: error:")]
        assert expected in error, (expected, done.stderr[-2000:])
        if "push" in expected:
            assert "run without --push_to_hub" in error, error


def test_classification_heads_are_the_ones_the_model_class_declares():
    """Not guessed by size: with num_labels == audio_segments the audio segment mixer has the heads' shape, and
    MER 2023's valence_from_emotion (num_labels -> 1) does not."""
    from modeling_avcpnet import AVCPNetConfig, MER2023Config
    from transformers import AutoModelForVideoClassification

    config = AVCPNetConfig.tiny(id2label={0: "a", 1: "b"})
    assert config.num_labels == config.audio_segments
    model = AutoModelForVideoClassification.from_config(config)  # unimodal logits from the SF terms: one head
    assert set(classification_heads(model)) == {"classifier"}
    separate = AutoModelForVideoClassification.from_config(
        AVCPNetConfig.tiny(id2label={0: "a", 1: "b"}, unimodal_head="separate"))
    assert set(classification_heads(separate)) == {"classifier", "visual_classifier", "audio_classifier"}
    visual_only = AutoModelForVideoClassification.from_config(AVCPNetConfig.tiny(modalities="visual"))
    assert set(classification_heads(visual_only)) == {"visual_classifier"}
    mer = MER2023Config(feature_names=["a", "v"], feature_sizes=[6, 4], feature_modalities=["audio", "visual"],
                        hidden_size=8)
    heads = classification_heads(AutoModelForVideoClassification.from_config(mer))
    assert set(heads) == {"decoder.emotion", "decoder.valence_from_emotion"}
    assert heads["decoder.valence_from_emotion"].in_features == mer.num_labels


def test_metrics_match_sklearn():
    from sklearn.metrics import f1_score, recall_score

    rng = np.random.default_rng(0)
    references = rng.integers(0, 6, 50)
    predictions = np.where(rng.random(50) < 0.6, references, rng.integers(0, 6, 50))
    metrics = classification_metrics(predictions, references, 6)
    assert metrics["accuracy"] == pytest.approx((predictions == references).mean())
    assert metrics["wa_f1"] == pytest.approx(f1_score(references, predictions, average="weighted"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(references, predictions, average="macro"))
    assert metrics["uar"] == pytest.approx(recall_score(references, predictions, average="macro"))


def _accumulated_gradients(config, state_dict, examples, batch_size, accumulation, output_dir, list_dataset):
    from transformers import AutoModelForVideoClassification, TrainerCallback, TrainingArguments

    model = AutoModelForVideoClassification.from_config(config)
    model.load_state_dict(state_dict)
    # BatchNorm uses batch statistics in training, so micro-batches of 2 + 1 would not normalise like a batch of
    # 3: keep its running statistics (eval mode) for this comparison.
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = types.MethodType(lambda self, mode=True: self, module)
    grads = {}

    class Grab(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            grads.update({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})

    args = TrainingArguments(output_dir=str(output_dir), per_device_train_batch_size=batch_size,
                             gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=0.0,
                             max_grad_norm=0.0, report_to="none", use_cpu=True, save_strategy="no",
                             remove_unused_columns=False, disable_tqdm=True, dataloader_drop_last=False)
    trainer = EPCETrainer(model=model, args=args, train_dataset=list_dataset(examples), callbacks=[Grab()])
    trainer.train()
    return grads


@pytest.mark.smoke
def test_gradient_accumulation_equals_one_big_batch(tmp_path, list_dataset):
    """2 micro-batches (2 + 1 samples) accumulated == one batch of 3: each branch's loss is normalised by its
    samples in the whole accumulated batch, not per micro-batch (which would weight the lone third sample twice);
    one clip has no audio, so the audio/fusion losses count 2 samples and the visual loss 3."""
    from modeling_avcpnet import AVCPNetConfig
    from transformers import AutoModelForVideoClassification

    config = AVCPNetConfig.tiny(drop_path_rate=0.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                classifier_dropout_prob=0.0)
    state_dict = AutoModelForVideoClassification.from_config(config).state_dict()
    generator = torch.Generator().manual_seed(0)
    t = config.audio_length // config.audio_segments
    examples = [{
        "pixel_values_videos": torch.randn(config.num_segments, config.frames_per_segment, 3, config.image_size,
                                           config.image_size, generator=generator),
        "input_features": torch.randn(config.audio_segments, t, config.num_mfcc, generator=generator),
        "audio_mask": torch.tensor(has_audio),
        "labels": torch.tensor(label),
    } for label, has_audio in ((0, True), (3, False), (5, True))]
    accumulated = _accumulated_gradients(config, state_dict, examples, 2, 2, tmp_path / "a", list_dataset)
    big_batch = _accumulated_gradients(config, state_dict, examples, 3, 1, tmp_path / "b", list_dataset)
    assert accumulated.keys() == big_batch.keys() and len(accumulated) > 10
    for name in big_batch:
        torch.testing.assert_close(accumulated[name], big_batch[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.smoke
def test_mer2023_gradient_accumulation_equals_one_big_batch(tmp_path, list_dataset):
    """--model_type mer2023: the model's own loss (eq. 9, a micro-batch mean) is normalised over the accumulated
    batch by the same compute_loss, so 2 + 1 accumulated samples give the gradients of one batch of 3."""
    from modeling_avcpnet import MER2023Config
    from transformers import AutoModelForVideoClassification

    config = MER2023Config(feature_names=["hubert_l1", "vit"], feature_sizes=[6, 4],
                           feature_modalities=["audio", "visual"], hidden_size=8, hidden_dropout_prob=0.0)
    state_dict = AutoModelForVideoClassification.from_config(config).state_dict()
    generator = torch.Generator().manual_seed(0)
    examples = [{"input_features": torch.randn(10, generator=generator), "labels": torch.tensor(label),
                 "valence_labels": torch.tensor(valence)} for label, valence in ((0, 0.5), (3, -2.0), (5, 1.5))]
    accumulated = _accumulated_gradients(config, state_dict, examples, 2, 2, tmp_path / "a", list_dataset)
    big_batch = _accumulated_gradients(config, state_dict, examples, 3, 1, tmp_path / "b", list_dataset)
    assert accumulated.keys() == big_batch.keys() and {"uncertainty.d_emotion", "uncertainty.d_valence"} <= set(
        big_batch)
    for name in big_batch:
        torch.testing.assert_close(accumulated[name], big_batch[name], rtol=1e-4, atol=1e-6, msg=name)


def test_training_logs_branch_losses_and_writes_reports(trained):
    output_dir = Path(trained["output_dir"])
    trainer = trained["trainer"]
    assert trained["global_step"] == EXPECTED_STEPS
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all({"loss_fusion", "loss_visual", "loss_audio"} <= set(entry) for entry in logged)
    # with weights (1, 1, 1) the logged total is the sum of the branch losses (same steps, same samples)
    for entry in logged:
        assert entry["loss"] == pytest.approx(entry["loss_fusion"] + entry["loss_visual"] + entry["loss_audio"],
                                              abs=2e-3)
    results = json.loads((output_dir / "all_results.json").read_text())
    for prefix in ("eval", "test"):
        for key in ("accuracy", "wa_f1", "macro_f1", "uar", "fusion_accuracy", "visual_accuracy",
                    "audio_accuracy", "loss_fusion", "loss_visual", "loss_audio"):
            assert f"{prefix}_{key}" in results, f"{prefix}_{key}"
        matrix = json.loads((output_dir / f"{prefix}_confusion_matrix.json").read_text())
        counts = np.array(matrix["matrix"])
        assert matrix["labels"] == list(trainer.model.config.id2label.values())
        assert counts.sum() == 6  # one clip per class: no padding duplicates, nothing dropped
        assert results[f"{prefix}_accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
        assert (output_dir / f"{prefix}_confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        report = json.loads((output_dir / f"{prefix}_classification_report.json").read_text())
        assert set(trainer.model.config.id2label.values()) <= set(report)
    assert "fused acc" in format_results_table(trained["results"])


def test_hub_folder_loads_by_repo_id_offline(trained, tmp_path):
    (upload,) = trained["uploads"]
    assert upload["repo_id"] == "org/name"
    folder = Path(upload["folder"])
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "processor_config.json"} <= names or \
        {"config.json", "model.safetensors", "README.md", "preprocessor_config.json"} <= names, names
    assert not any(name.startswith("checkpoint-") for name in names)
    config = json.loads((folder / "config.json").read_text())
    assert "AutoModelForVideoClassification" in config["auto_map"]
    assert config["label2polarity"] == trained["trainer"].model.config.label2polarity

    card = (folder / "README.md").read_text()
    from huggingface_hub import ModelCard

    model_index = ModelCard(card).data.to_dict()["model-index"]
    reported = {(r["dataset"]["split"], m["name"]): m["value"]
                for entry in model_index for r in entry["results"] for m in r["metrics"]}
    test_accuracy = trained["results"]["test"]["accuracy"]
    assert reported[("test", "Accuracy (fused)")] == pytest.approx(test_accuracy, abs=1e-4)
    assert "| fear | negative |" in card and "learning_rate: 0.001" in card
    assert f"- num_epochs: {EPOCHS}\n" in card and "max_steps" not in card
    assert "optimizer: adamw_torch" in card and "OptimizerNames" not in card and "SchedulerType" not in card

    # Populate a Hugging Face cache as a download would, then load by repo id with the Hub switched off.
    hf_home = tmp_path / "hf_home"
    repo_cache = hf_home / "hub" / "models--org--name"
    revision = "0" * 40
    shutil.copytree(folder, repo_cache / "snapshots" / revision)
    (repo_cache / "refs").mkdir(parents=True)
    (repo_cache / "refs" / "main").write_text(revision)
    example = tmp_path / "inputs.pt"
    model = trained["trainer"].model.eval()
    processor = trained["trainer"].processor
    video = trained["trainer"].eval_dataset  # a transformed split: examples are model inputs
    inputs = video[0:2]
    inputs.pop("labels")
    assert inputs.pop("decode_error") == ["", ""]  # train_hf's splits mark clips that fail to decode
    with torch.no_grad():
        expected = model(**inputs).logits
    torch.save({"inputs": dict(inputs), "expected": expected, "processor_class": type(processor).__name__}, example)
    script = (
        "import torch\n"
        "from transformers import AutoModelForVideoClassification, AutoProcessor\n"
        "model = AutoModelForVideoClassification.from_pretrained('org/name', trust_remote_code=True).eval()\n"
        "processor = AutoProcessor.from_pretrained('org/name', trust_remote_code=True)\n"
        f"saved = torch.load({str(example)!r})\n"
        "assert type(processor).__name__ == saved['processor_class'], type(processor)\n"
        "with torch.no_grad():\n"
        "    logits = model(**saved['inputs']).logits\n"
        "torch.testing.assert_close(logits, saved['expected'], rtol=1e-4, atol=1e-5)\n"
        "print('LOADED', type(model).__module__)\n"
    )
    done = run_without_package(script, cwd=tmp_path, env={"HF_HOME": str(hf_home)}, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED transformers_modules" in done.stdout


def _write_seven_label_set(root: Path):
    """A tiny dataset in the CAER layout ({train,validation,test}/<Emotion>/*.mp4), 7 classes."""
    from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip

    classes = ["Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
    for split in ("train", "validation", "test"):
        for index, name in enumerate(classes):
            frames = moving_square_frames(12, 32, 32, color=(40 * index, 255 - 30 * index, 128), speed=1 + index)
            audio = tone(220.0 * (1 + index / 4), 1.0, 16000)
            write_clip(root / split / name / f"{index:04d}.mp4", frames=frames, fps=12, audio=audio,
                       sample_rate=16000)
    return classes


def test_finetune_six_label_checkpoint_on_seven_label_dataset(trained, tmp_path):
    """The paper's dagger rows: start from eMotions weights, re-initialise the heads, new polarity map."""
    _write_seven_label_set(tmp_path / "caer")
    checkpoint = trained["output_dir"]
    base = parse_arguments(["--model_name_or_path", checkpoint, "--dataset_name", "caer",
                                     "--output_dir", str(tmp_path / "out")])[0]
    from datasets_emotions import load_dataset

    caer = load_dataset("caer", data_dir=str(tmp_path / "caer"), cache_dir=str(tmp_path / "cache"))
    id2label, label2polarity = dataset_label_maps(caer["train"])
    config, model, old_labels = build_config_and_model(base, id2label, label2polarity)
    source = trained["trainer"].model
    assert old_labels == list(source.config.id2label.values()) and config.num_labels == 7
    assert config.id2label == id2label and config.label2polarity == label2polarity
    assert label2polarity["happy"] == "positive" and label2polarity["anger"] == "negative"
    source_state, new_state = source.state_dict(), model.state_dict()
    heads = set(classification_heads(model))
    head_weights = [key for key in new_state if key.startswith(tuple(f"{h}." for h in heads)) and key.endswith("weight")]
    assert heads and head_weights and all(new_state[key].shape[0] == 7 for key in head_weights)  # to the classes
    backbone = [k for k in new_state if not any(k.startswith(h + ".") for h in heads)]
    assert len(backbone) > 20
    for key in backbone:  # everything else comes from the checkpoint
        torch.testing.assert_close(new_state[key], source_state[key], msg=key)

    result = train_hf.main([
        "--model_name_or_path", checkpoint, "--dataset_name", "caer", "--data_dir", str(tmp_path / "caer"),
        "--dataset_cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out"),
        "--do_train", "--do_eval", "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu",
        "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
    ])
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert len(saved["id2label"]) == 7 and saved["label2polarity"]["surprise"] in ("positive", "neutral", "negative")
    assert np.array(json.loads((tmp_path / "out" / "eval_confusion_matrix.json").read_text())["matrix"]).shape == (7, 7)
    assert result["global_step"] == 2
    card = (tmp_path / "out" / "README.md").read_text()
    assert checkpoint not in card and "base_model" not in card.split("---")[1]  # never a path of this machine
    # issue 22.5: a --max_steps run's card gives the steps and the epochs actually trained, not the configured ones
    assert "- max_steps: 2\n" in card and "trained (max_steps overrides num_train_epochs 3)" in card, card


def _run_script(args, env_extra=None, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def _complete_json(path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def test_resume_after_kill_reaches_the_same_step_count(trained, sample_cache, tmp_path):
    output_dir = tmp_path / "run"
    args = [sys.executable, "train_hf.py", *tiny_run_args(output_dir, sample_cache, "--do_train",
                                                         "--save_strategy", "steps", "--save_steps", "2")]
    process = _run_script(args, start_new_session=True)
    first_checkpoint = output_dir / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not _complete_json(first_checkpoint) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first save finished (trainer_state.json is written last, and can be partial)
    process.send_signal(signal.SIGKILL)
    log = process.communicate()[0]
    assert first_checkpoint.exists(), log[-3000:]
    assert not (output_dir / "model.safetensors").exists(), "the run finished before it could be killed"
    interrupted_at = max(int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*"))
    assert interrupted_at < EXPECTED_STEPS

    resumed = _run_script(args + ["--resume_from_checkpoint", "last"])
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log[-3000:]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == trained["global_step"] == EXPECTED_STEPS
    steps_logged = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps_logged == list(range(1, EXPECTED_STEPS + 1))  # the steps before the kill are kept


def test_two_cpu_processes_with_torchrun(sample_cache, tmp_path):
    output_dir = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [str(torchrun), "--nproc_per_node", "2", "--standalone", "train_hf.py",
            *tiny_run_args(output_dir, sample_cache, "--do_train", "--do_eval", "--max_steps", "2",
                           "--save_strategy", "no", "--ddp_backend", "gloo")]
    process = _run_script(args)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 0, log[-4000:]
    assert "process 0/2 finished" in log and "process 1/2 finished" in log, log[-3000:]
    assert log.count("wrote evaluation report") == 1, log[-3000:]
    assert "WARNING" not in log.split("wrote evaluation report")[0].splitlines()[-1]  # a normal event: INFO
    assert "find_unused_parameters" not in log and "pin_memory" not in log, log[-3000:]
    matrix = json.loads((output_dir / "eval_confusion_matrix.json").read_text())
    assert np.array(matrix["matrix"]).sum() == 6  # the gathered predictions, without the sampler's padding
    results = json.loads((output_dir / "all_results.json").read_text())
    assert "eval_accuracy" in results and "eval_visual_accuracy" in results


def test_resume_last_skips_a_checkpoint_whose_save_was_cut_short(tmp_path, caplog):
    """kill -9 while the Trainer saves leaves checkpoint-N without a readable trainer_state.json (written last):
    `--resume_from_checkpoint last` takes the newest complete one instead of failing on the broken one."""
    for step, state in ((2, '{"global_step": 2}'), (10, '{"global_step": 10}'), (12, '{"global_st'), (14, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-99.tmp").mkdir()  # not a checkpoint name
    with caplog.at_level("WARNING", logger="train_hf"):
        assert train_hf.last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    skipped = " ".join(record.getMessage() for record in caplog.records)
    assert "checkpoint-14" in skipped and "checkpoint-12" in skipped
    assert train_hf.last_complete_checkpoint(str(tmp_path / "missing")) is None


def test_torch_compile_through_training_arguments(sample_cache, tmp_path):
    """`--torch_compile true` (TrainingArguments -> Accelerate -> torch.compile) trains the same steps as eager:
    `aot_eager` traces and partitions the forward and backward as inductor would, without its code generation (minutes
    on 2 cores); the saved model has the plain parameter names and loads back."""
    from torch._dynamo.utils import counters

    from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification

    losses = {}
    for name, extra in (("eager", ()), ("compiled", ("--torch_compile", "true", "--torch_compile_backend",
                                                      "aot_eager"))):
        output_dir = tmp_path / name
        torch._dynamo.reset()
        counters.clear()
        train_hf.main(tiny_run_args(output_dir, sample_cache, "--do_train", "--max_steps", "3", *extra))
        state = json.loads((output_dir / "trainer_state.json").read_text())
        losses[name] = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert counters["stats"]["unique_graphs"] >= 1  # the compiled run did compile
    assert not counters["graph_break"], dict(counters["graph_break"])  # one graph: no break, no host sync
    assert len(losses["eager"]) == 3
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-4)
    loaded = AVCPNetForVideoClassification.from_pretrained(tmp_path / "compiled")
    assert not any("_orig_mod" in key for key in loaded.state_dict())
