"""MER 2023 deep features: throughput of reading them from the `datasets.map` cache versus recomputing them.

Generates N small mp4 clips with audio (64x64, 2 s, 8 fps, 16 kHz tone), builds tiny randomly initialised
backbones (HuBERT-style speech model, ViT or ResNet image model; nothing downloaded) and runs
`MER2023DeepFeatureExtractor.map_dataset` over a `datasets.Dataset` of the clip paths:

- recompute: `load_from_cache_file=False`: decode audio (resampled to 16 kHz) and 8 frames per clip, run both
  backbones, write the Arrow cache;
- cached: the same call with the default `load_from_cache_file=True`: the fingerprint (dataset + backbone weights
  + settings) matches, so `datasets` opens the Arrow file instead;

each followed by reading the `input_features` column as one numpy array (what training consumes). Prints clips/s of
both and the ratio (median of the repeats).

    .venv/bin/python benchmarks/bench_mer2023_features.py                  # 300 clips, ViT
    .venv/bin/python benchmarks/bench_mer2023_features.py --clips 300 --vision resnet
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import write_clip_once  # the repository on sys.path

import datasets  # noqa: E402
from transformers import HubertConfig, HubertModel, ResNetConfig, ResNetModel, ViTConfig, ViTModel  # noqa: E402

from datasets_emotions.synthetic_media import moving_square_frames, tone  # noqa: E402
from modeling_avcpnet import MER2023DeepFeatureExtractor  # noqa: E402
from modeling_avcpnet.feature_extraction_mer2023 import load_frames, load_waveform  # noqa: E402


def make_clips(folder: Path, count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:05d}.mp4"
        color = (40 + i % 200, 90, 200 - i % 150)
        paths.append(write_clip_once(path, lambda: np.stack(list(moving_square_frames(16, 64, 64, color=color))),
                                     fps=8, audio=tone(150.0 + 5 * (i % 60), 2.0, 16000), sample_rate=16000))
    return paths


def tiny_extractor(vision: str) -> MER2023DeepFeatureExtractor:
    torch.manual_seed(0)
    audio = HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                     conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),
                                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2))
    if vision == "vit":
        image = ViTModel(ViTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64))
    else:
        image = ResNetModel(ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"))
    return MER2023DeepFeatureExtractor(audio, audio_layers=(2, 3, 4), vision_model=image, num_frames=8)


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--vision", choices=("vit", "resnet"), default="vit")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="recompute runs (cached runs: 3x as many)")
    parser.add_argument("--media-dir", default=str(Path(tempfile.gettempdir()) / "mer2023_bench_clips"))
    args = parser.parse_args()

    datasets.disable_progress_bars()
    media = Path(args.media_dir)
    media.mkdir(parents=True, exist_ok=True)
    seconds, paths = timed(lambda: make_clips(media, args.clips))
    print(f"{len(paths)} clips in {media} ({seconds:.1f} s to generate the missing ones)")
    dataset = datasets.Dataset.from_dict({"video": paths, "audio": [""] * len(paths)})
    extractor = tiny_extractor(args.vision)
    print(f"features {extractor.feature_names} sizes {extractor.feature_sizes}; "
          f"torch threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as cache_dir:
        def run(load_from_cache_file: bool):
            mapped = extractor.map_dataset(dataset, batch_size=args.batch_size, cache_dir=cache_dir,
                                           load_from_cache_file=load_from_cache_file)
            return mapped.with_format("numpy")["input_features"]

        recompute, cached = [], []
        for _ in range(args.repeats):
            seconds, computed = timed(lambda: run(False))
            recompute.append(seconds)
        for _ in range(3 * args.repeats):
            seconds, loaded = timed(lambda: run(True))
            cached.append(seconds)
        assert np.array_equal(np.asarray(computed), np.asarray(loaded)), "cache returned other features"

    # Where recomputing spends its time, on the first batches: decoding versus the two backbones.
    sample = paths[: min(len(paths), 4 * args.batch_size)]
    decode_s, (waveforms, clips) = timed(lambda: ([load_waveform(p, extractor.sampling_rate) for p in sample],
                                                  [load_frames(p, extractor.num_frames) for p in sample]))
    audio_s = sum(timed(lambda: extractor.extract_audio(waveforms[i : i + args.batch_size]))[0]
                  for i in range(0, len(sample), args.batch_size))
    visual_s = sum(timed(lambda: extractor.extract_visual(clips[i : i + args.batch_size]))[0]
                   for i in range(0, len(sample), args.batch_size))
    per_clip = 1000 / len(sample)
    print(f"recompute per clip: decoding {decode_s * per_clip:.0f} ms, speech model {audio_s * per_clip:.0f} ms, "
          f"image model {visual_s * per_clip:.0f} ms")

    recompute_s, cached_s = statistics.median(recompute), statistics.median(cached)
    print(f"recompute: {recompute_s:.2f} s ({len(paths) / recompute_s:.1f} clips/s)  "
          f"runs {[round(s, 2) for s in recompute]}")
    print(f"cached:    {cached_s:.3f} s ({len(paths) / cached_s:.0f} clips/s)  runs {[round(s, 3) for s in cached]}")
    print(f"cached / recompute throughput: {recompute_s / cached_s:.0f}x")


if __name__ == "__main__":
    main()
