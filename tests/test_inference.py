"""Fast inference modes (bfloat16, int8) agree with float32 on a trained model; dtype through from_pretrained and the
pipeline; the bf16 window attention stays on the fused SDPA kernel; process sharding."""

import copy

import pytest
import torch
from torch.profiler import profile

from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip
from modeling_avcpnet import AVCPNetConfig, AVCPNetForVideoClassification, AVCPNetProcessor
from modeling_avcpnet.inference import ProcessShard, load_for_inference, model_identity, optimize_for_inference
from modeling_avcpnet.pipeline_avcpnet import save_for_pipeline

NUM_LABELS = 6


def synthetic_batch(config, size: int, generator: torch.Generator):
    """Inputs whose class shows in the frames' colour and the MFCC level (both noisy), and the classes."""
    labels = torch.randint(NUM_LABELS, (size,), generator=generator)
    frames = torch.randn(size, config.num_segments, config.frames_per_segment, 3, config.image_size,
                         config.image_size, generator=generator)
    frames[:, :, :, 0] += (labels.float() - 2.5).view(-1, 1, 1, 1, 1)
    audio = torch.randn(size, config.audio_segments, config.audio_length // config.audio_segments, config.num_mfcc,
                        generator=generator)
    audio += (labels.float() / 2 - 1.25).view(-1, 1, 1, 1)
    return {"pixel_values_videos": frames, "input_features": audio}, labels


@pytest.fixture(scope="module")
def trained():
    """A tiny AV-CPNet trained for 80 steps on a task it learns (colour and MFCC level give the class), so that
    agreement between precisions is measured on a model with real decisions, not random logits near a tie."""
    torch.manual_seed(0)
    config = AVCPNetConfig.tiny()
    model = AVCPNetForVideoClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)  # (5e-3 reaches only ~0.54 with the public structure)
    generator = torch.Generator().manual_seed(1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, above all on a shared machine
    try:
        model.train()
        for _ in range(80):
            inputs, labels = synthetic_batch(config, 16, generator)
            loss = model(**inputs, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    test_inputs, test_labels = synthetic_batch(config, 240, torch.Generator().manual_seed(2))
    with torch.inference_mode():
        reference = model(**test_inputs).logits.softmax(-1)
    assert (reference.argmax(-1) == test_labels).float().mean() > 0.55  # it learned (chance: 1/6)
    return model, test_inputs, reference


@pytest.mark.parametrize("mode", [{"dtype": "bfloat16"}])  # int8 is no fast path: see inference/loading.py
def test_fast_modes_agree_with_float32_on_a_trained_model(trained, mode):
    model, inputs, reference = trained
    fast = optimize_for_inference(copy.deepcopy(model), **mode)
    with torch.inference_mode():
        probabilities = fast(**inputs).logits.float().softmax(-1)  # float32 inputs: the model casts them
    agreement = (probabilities.argmax(-1) == reference.argmax(-1)).float().mean().item()
    assert agreement >= 0.99, (mode, agreement)
    assert (probabilities - reference).abs().max().item() <= 0.02, mode


def test_bfloat16_window_attention_runs_the_fused_sdpa_kernel(trained):
    model = optimize_for_inference(copy.deepcopy(trained[0]), dtype="bfloat16")
    inputs = {key: value[:2] for key, value in trained[1].items()}
    with torch.inference_mode(), profile() as profiler:
        model(**inputs)
    kernels = {event.key for event in profiler.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in kernels
    assert "aten::_scaled_dot_product_attention_math" not in kernels
    assert model.avcpnet.visual_encoder.layers[0].blocks[0].attention.qkv.weight.dtype == torch.bfloat16


def test_model_identity_ignores_precision_but_not_weights(trained):
    model = trained[0]
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.classifier.parameters()).view(-1)[0] += 1e-3
    assert model_identity(model) == model_identity(copy.deepcopy(model)) != model_identity(other)


def test_dtype_through_from_pretrained_pipeline_and_loader(trained, tmp_path):
    from transformers import AutoModelForVideoClassification, pipeline

    model = trained[0]
    processor = AVCPNetProcessor.from_model_config(model.config)
    folder = save_for_pipeline(model, processor, tmp_path / "checkpoint")
    clip = write_clip(tmp_path / "clip.mp4", moving_square_frames(16, 40, 48), fps=8, audio=tone(500, 2.0, 16000),
                      sample_rate=16000)

    for key in ("dtype", "torch_dtype"):
        loaded = AutoModelForVideoClassification.from_pretrained(folder, **{key: torch.bfloat16})
        assert loaded.dtype == torch.bfloat16
    inputs = processor(videos=[clip], return_tensors="pt")  # float32 frames and MFCC
    assert inputs["pixel_values_videos"].dtype == inputs["input_features"].dtype == torch.float32
    with torch.inference_mode():
        reference = model(**inputs).logits.softmax(-1)[0]
        bf16 = loaded(**inputs).logits.float().softmax(-1)[0]
    assert (bf16 - reference).abs().max() <= 0.02

    classifier = pipeline("audio-visual-emotion-classification", model=folder, dtype="bfloat16",
                          trust_remote_code=True)
    assert classifier.model.dtype == torch.bfloat16
    result = classifier(clip, top_k=NUM_LABELS)
    scores = {item["label"]: item["score"] for item in result["labels"]}
    assert max(abs(scores[model.config.id2label[i]] - float(reference[i])) for i in range(NUM_LABELS)) <= 0.02

    fast, _, identity = load_for_inference(folder, dtype="bfloat16")
    assert fast.dtype == torch.bfloat16 and identity == model_identity(model)


def test_invalid_modes_are_refused(trained):
    with pytest.raises(ValueError, match="dtype must be one of"):
        optimize_for_inference(copy.deepcopy(trained[0]), dtype="float16")
    with pytest.raises(ValueError, match="use it with dtype float32"):
        optimize_for_inference(copy.deepcopy(trained[0]), dtype="bfloat16", quantize="int8")


def test_process_shards_partition_the_inputs_and_pick_devices():
    items = list(range(11))
    for world_size in (1, 2, 3, 4):
        shards = [ProcessShard(rank, world_size).select(items) for rank in range(world_size)]
        assert sorted(sum(shards, [])) == items
    shard = ProcessShard.from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (shard.rank, shard.world_size, shard.distributed) == (3, 4, True)
    assert shard.device(None, cuda_available=True, gpus=8) == "cuda:1"  # one GPU per process on its node
    assert shard.device(None, cuda_available=True, gpus=1) == "cuda:0"  # more processes than GPUs: they share
    assert shard.device(None, cuda_available=False) == "cpu"
    assert shard.device("cuda:0", cuda_available=True) == "cuda:0"
    assert ProcessShard.from_environment({}) == ProcessShard(0, 1, 0)
    with pytest.raises(ValueError, match="inconsistent"):
        ProcessShard.from_environment({"RANK": "2", "WORLD_SIZE": "2"})
