"""Video processor for AV-CPNet: segment-based frame sampling straight from video files, crop and normalise.

A clip of `N` frames is split into `num_segments` segments of equal frame counts (equal durations at a constant
frame rate; variable frame rate files are split by frame count too); from each, `frames_per_segment`
consecutive frames are taken, at a random offset when training and centred when evaluating. Clips with fewer than
`num_segments * frames_per_segment` frames are loop-padded (frame indices wrap around), as in the public code.
Only the sampled frames are decoded (see `media_avcpnet.MediaReader`), resized so that their short side is
`size["shortest_edge"]` inside FFmpeg's scaler, then cropped to `crop_size` (centre crop when evaluating; a random
centre or corner crop when training, then with probability `augment_probability` one of horizontal flip, rotation
by up to `max_rotation_degrees`, or brightness scaled by a factor in `brightness_range`, the same for every frame of
the clip) and normalised (`x / 255 - 100 / 255` by default: the public code's mean and no std).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF

from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

from .media_avcpnet import FrameFolderReader, MediaError, MediaReader, VideoDecodingError


class AVCPNetVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    num_segments (`int`, *optional*, defaults to 16):
        Equal-duration segments a clip is split into.
    frames_per_segment (`int`, *optional*, defaults to 8):
        Consecutive frames taken from each segment.
    augment_probability (`float`, *optional*, defaults to 0.3):
        Training only: probability of applying one of flip / rotation / brightness to a clip.
    max_rotation_degrees (`float`, *optional*, defaults to 20.0):
        Training only: the rotation augmentation draws an angle uniformly in [-max, max].
    brightness_range (`list[float]`, *optional*, defaults to `[0.5, 1.0]`):
        Training only: the brightness augmentation draws a factor uniformly in this range.
    decode_threads (`int`, *optional*, defaults to 0):
        Decoder threads per video (0: FFmpeg picks from the CPU count).
    """

    num_segments: int
    frames_per_segment: int
    augment_probability: float
    max_rotation_degrees: float
    brightness_range: list[float]
    decode_threads: int


@dataclass
class DecodedClip:
    """Sampled frames of one video, before cropping: `frames` is `(S * F, H, W, 3)` uint8 with the short side
    already resized; `audio` is its mono soundtrack (or `None`) when audio was requested from the same file."""

    name: str
    frames: np.ndarray
    indices: np.ndarray
    num_frames: int
    audio: Optional[np.ndarray] = None
    audio_problem: Optional[str] = None


class AVCPNetVideoProcessor(BaseVideoProcessor):
    r"""
    Turns videos into AV-CPNet's `pixel_values_videos` of shape `(batch, num_segments, frames_per_segment, 3,
    crop_height, crop_width)`, float32.

    A video is a path to a media file (any container/codec FFmpeg reads), `bytes`, a seekable binary file object,
    a folder of extracted frames (`000001.jpg`, ... : the eMotions release layout), or an already decoded array
    `(T, H, W, 3)` uint8 (numpy or torch), optionally as a `(array, metadata)` tuple as returned by
    `transformers.video_utils.load_video`. A list of these is a batch.

    Call arguments (besides the usual `return_tensors`):
        training (`bool`, defaults to `False`): random snippet offsets, crops and augmentation, drawn from
            `generator` (a `torch.Generator`) or, when it is `None`, from torch's global RNG, so that
            `transformers.set_seed` makes them reproducible while successive calls (epochs) differ.
        skip_bad_files (`bool`, defaults to `False`): when `False`, the first video that cannot be decoded raises
            `VideoDecodingError` (a `ValueError` naming the file and the problem). When `True`, such videos are
            left out of the batch: the returned `BatchFeature` holds only the good samples, and carries two
            attributes (not keys, so `model(**batch)` still works): `batch.kept_indices`, the positions in the
            input list of the samples in the batch, in order, and `batch.errors`, a dict mapping the position of
            every left-out input to its error message. Both are always set (`errors` is empty when every file
            decoded). Other exceptions (bugs, wrong argument types) are never swallowed.
    """

    resample = PILImageResampling.BILINEAR
    size = {"shortest_edge": 112}
    crop_size = {"height": 112, "width": 112}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = [100 / 255, 100 / 255, 100 / 255]
    image_std = [1.0, 1.0, 1.0]
    do_convert_rgb = True
    do_sample_frames = True
    num_segments = 16
    frames_per_segment = 8
    augment_probability = 0.3
    max_rotation_degrees = 20.0
    brightness_range = [0.5, 1.0]
    decode_threads = 0
    valid_kwargs = AVCPNetVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    @property
    def num_frames_per_clip(self) -> int:
        return self.num_segments * self.frames_per_segment

    # -- sampling -------------------------------------------------------------------------------------------------

    def sample_indices(self, num_frames: int, training: bool = False,
                       generator: Optional[torch.Generator] = None) -> np.ndarray:
        """Frame indices to decode for a clip of `num_frames` frames: `(num_segments * frames_per_segment,)` int64,
        segment after segment. Evaluation: the centred snippet of each segment (deterministic). Training: a
        random snippet per segment. Clips shorter than `num_segments * frames_per_segment` frames are loop-padded:
        the indices run through the clip and wrap around (at a random starting frame when training)."""
        segments, length = self.num_segments, self.frames_per_segment
        total = segments * length
        if num_frames <= 0:
            raise ValueError(f"cannot sample frames from a clip with {num_frames} frames")
        if num_frames < total:
            start = int(torch.randint(num_frames, (1,), generator=generator)) if training else 0
            return (start + np.arange(total, dtype=np.int64)) % num_frames
        bounds = (np.arange(segments + 1, dtype=np.int64) * num_frames) // segments
        slack = bounds[1:] - bounds[:-1] - length  # >= 0 because num_frames >= segments * length
        if training:
            offsets = (torch.rand(segments, generator=generator).numpy() * (slack + 1)).astype(np.int64)
            offsets = np.minimum(offsets, slack)
        else:
            offsets = slack // 2
        starts = bounds[:-1] + offsets
        return (starts[:, None] + np.arange(length, dtype=np.int64)[None, :]).reshape(-1)

    # -- decoding -------------------------------------------------------------------------------------------------

    def decode_clip(self, video: Any, training: bool = False, generator: Optional[torch.Generator] = None,
                    audio_sample_rate: Optional[int] = None, audio_max_seconds: Optional[float] = None) -> DecodedClip:
        """Sample and decode the frames of one video (short side resized to `size["shortest_edge"]`).

        With `audio_sample_rate`, a media file's soundtrack is decoded in the same pass (mono float32 at that
        rate) and returned as `clip.audio` (`None`, with the reason in `clip.audio_problem`, when it has none);
        `audio_max_seconds` limits that to the central part of a longer soundtrack.
        Raises `VideoDecodingError` for media that cannot be used.
        """
        shortest_edge = self.size.shortest_edge if self.do_resize else None
        if isinstance(video, tuple) and len(video) == 2 and not isinstance(video[0], (str, bytes)):
            video = video[0]  # (array, metadata) as returned by load_video: sampling is by frame index
        if isinstance(video, (str, os.PathLike)) and os.path.isdir(video):
            return self._decode_frame_folder(os.fspath(video), training, generator, shortest_edge)
        if isinstance(video, (np.ndarray, torch.Tensor)):
            return self._sample_array(video, training, generator, shortest_edge)
        with MediaReader(video, require_video=True, audio_sample_rate=audio_sample_rate,
                         audio_max_seconds=audio_max_seconds, threads=self.decode_threads) as reader:
            indices = self.sample_indices(reader.num_frames, training, generator)
            frames = reader.read_frames(indices, shortest_edge=shortest_edge)
            return DecodedClip(reader.name, frames, indices, reader.num_frames, reader.audio, reader.audio_problem)

    def _decode_frame_folder(self, folder: str, training, generator, shortest_edge) -> DecodedClip:
        reader = FrameFolderReader(folder)
        indices = self.sample_indices(reader.num_frames, training, generator)
        frames = self._resize_array(reader.read_frames(indices), shortest_edge)
        return DecodedClip(reader.name, frames, indices, reader.num_frames)

    def _sample_array(self, video, training, generator, shortest_edge) -> DecodedClip:
        array = video.numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
        if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
        if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[0] == 0:
            raise VideoDecodingError("<array>", f"a decoded video must be (T, H, W, 3) with T > 0, got {array.shape}")
        if array.dtype != np.uint8:
            raise VideoDecodingError("<array>", f"a decoded video must be uint8 RGB, got {array.dtype}")
        if array.shape[-1] == 1:
            array = np.repeat(array, 3, axis=-1)
        indices = self.sample_indices(len(array), training, generator)
        return DecodedClip("<array>", self._resize_array(array[indices], shortest_edge), indices, len(array))

    def _resize_array(self, frames: np.ndarray, shortest_edge: Optional[int]) -> np.ndarray:
        """Resize `(T, H, W, 3)` uint8 frames so that the short side is `shortest_edge` (antialiased bilinear)."""
        if not shortest_edge or min(frames.shape[1:3]) == shortest_edge:
            return frames
        height, width = frames.shape[1:3]
        scale = shortest_edge / min(height, width)
        target = [max(1, round(height * scale)), max(1, round(width * scale))]
        tensor = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2)
        resized = tvF.resize(tensor, target, interpolation=tvF.InterpolationMode.BILINEAR, antialias=True)
        return resized.permute(0, 2, 3, 1).contiguous().numpy()

    # -- transforms -----------------------------------------------------------------------------------------------

    def transform_clip(self, frames: np.ndarray, training: bool = False,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Crop, augment (training) and normalise sampled frames `(S * F, H, W, 3)` uint8 into
        `(num_segments, frames_per_segment, 3, crop_height, crop_width)` float32."""
        video = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2)  # (T, 3, H, W)
        crop_h, crop_w = self.crop_size.height, self.crop_size.width
        if training:
            video = self._random_crop(video, crop_h, crop_w, generator)
            video = self._augment(video, generator)
        elif self.do_center_crop:
            video = tvF.center_crop(video, [crop_h, crop_w])
        video = video.float()
        if self.do_rescale:
            video = video * self.rescale_factor
        if self.do_normalize:
            mean = torch.tensor(self.image_mean, dtype=torch.float32).view(1, -1, 1, 1)
            std = torch.tensor(self.image_std, dtype=torch.float32).view(1, -1, 1, 1)
            video = (video - mean) / std
        return video.reshape(self.num_segments, self.frames_per_segment, *video.shape[1:])

    def _random_crop(self, video: torch.Tensor, crop_h: int, crop_w: int, generator) -> torch.Tensor:
        """One of five crops (centre or a corner), the same for every frame, as the public code's training crop."""
        height, width = video.shape[-2:]
        if height < crop_h or width < crop_w:
            return tvF.center_crop(video, [crop_h, crop_w])  # pads
        position = int(torch.randint(5, (1,), generator=generator))
        top = {0: (height - crop_h) // 2, 1: 0, 2: 0, 3: height - crop_h, 4: height - crop_h}[position]
        left = {0: (width - crop_w) // 2, 1: 0, 2: width - crop_w, 3: 0, 4: width - crop_w}[position]
        return video[..., top:top + crop_h, left:left + crop_w]

    def _augment(self, video: torch.Tensor, generator) -> torch.Tensor:
        """With probability `augment_probability`, one of flip, rotation, brightness (same for the whole clip)."""
        draws = torch.rand(3, generator=generator)
        if float(draws[0]) >= self.augment_probability:
            return video
        choice = int(draws[1] * 3) % 3
        if choice == 0:
            return tvF.horizontal_flip(video)
        if choice == 1:
            angle = (2 * float(draws[2]) - 1) * self.max_rotation_degrees
            return tvF.rotate(video, angle, interpolation=tvF.InterpolationMode.BILINEAR)
        low, high = self.brightness_range
        return tvF.adjust_brightness(video, low + (high - low) * float(draws[2]))

    # -- batch entry point ----------------------------------------------------------------------------------------

    def preprocess(self, videos, training: bool = False, generator: Optional[torch.Generator] = None,
                   skip_bad_files: bool = False, return_tensors: Optional[str] = "pt", **kwargs) -> BatchFeature:
        """Decode, sample and transform a video or a list of videos; see the class docstring for the arguments.

        Returns a `BatchFeature` with `pixel_values_videos` `(B, num_segments, frames_per_segment, 3, H, W)`
        float32, and the attributes `kept_indices` and `errors` (see `skip_bad_files`).
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} for {type(self).__name__}")
        clips, kept, errors = [], [], {}
        for position, video in enumerate(make_video_list(videos)):
            try:
                clip = self.decode_clip(video, training=training, generator=generator)
            except VideoDecodingError as error:
                if not skip_bad_files:
                    raise
                errors[position] = str(error)
                continue
            clips.append(self.transform_clip(clip.frames, training=training, generator=generator))
            kept.append(position)
        return self.pack(clips, kept, errors, return_tensors)

    def pack(self, clips: list[torch.Tensor], kept: list[int], errors: dict[int, str],
             return_tensors: Optional[str] = "pt") -> BatchFeature:
        """Stack transformed clips into a `BatchFeature` carrying `kept_indices` and `errors` attributes."""
        if clips:
            pixel_values = torch.stack(clips)
        else:
            pixel_values = torch.zeros(0, self.num_segments, self.frames_per_segment, 3, self.crop_size.height,
                                       self.crop_size.width)
        if return_tensors == "np":
            pixel_values = pixel_values.numpy()
        elif return_tensors is None:
            pixel_values = list(pixel_values)
        batch = BatchFeature({"pixel_values_videos": pixel_values})
        batch.kept_indices = kept
        batch.errors = errors
        return batch

    def __call__(self, videos, **kwargs) -> BatchFeature:
        return self.preprocess(videos, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in ("size", "crop_size"):
            if output.get(key) is not None and not isinstance(output[key], dict):
                output[key] = {k: v for k, v in dict(output[key]).items() if v is not None}
        return output


def make_video_list(videos) -> list:
    """One video or a list of videos -> a list of videos (a 5-D array is a batch of decoded videos)."""
    if isinstance(videos, (list, tuple)) and not _is_array_with_metadata(videos):
        return list(videos)
    if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 5:
        return list(videos)
    return [videos]


def _is_array_with_metadata(value) -> bool:
    return (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (np.ndarray, torch.Tensor))
            and not isinstance(value[1], (np.ndarray, torch.Tensor)))


__all__ = ["AVCPNetVideoProcessor", "VideoDecodingError"]
