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

The class fills in `BaseVideoProcessor`'s hooks, so the base class's `preprocess` runs the usual steps and honours
its arguments (`do_sample_frames`, `num_frames`, `video_metadata`, `return_metadata`, `do_resize`, ...):
`sample_frames` (segment sampling), `_decode_and_sample_videos` (decodes only the sampled frames of each video
through the media layer) and `_preprocess` (crop, augment, normalise). It decodes video only: the soundtrack is the
processor's business (`AVCPNetProcessor` opens each file once for both).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF

from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling, SizeDict
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

from .media_avcpnet import MediaError, open_video, output_size


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
    training (`bool`, *optional*, defaults to `False`):
        Random snippet offsets, crops and augmentation instead of the deterministic evaluation transform.
    generator (`torch.Generator`, *optional*):
        Source of the training randomness; None uses torch's global RNG (so `transformers.set_seed` makes it
        reproducible while successive calls, i.e. epochs, differ).
    """

    num_segments: int
    frames_per_segment: int
    augment_probability: float
    max_rotation_degrees: float
    brightness_range: list[float]
    decode_threads: int
    training: bool
    generator: Any


class AVCPNetVideoProcessor(BaseVideoProcessor):
    r"""
    Turns videos into AV-CPNet's `pixel_values_videos` of shape `(batch, num_segments, frames_per_segment, 3,
    crop_height, crop_width)`, float32.

    A video is a path to a media file (any container/codec FFmpeg reads), `bytes`, a seekable binary file object,
    a folder of extracted frames (`000001.jpg`, ... : the eMotions release layout), an open reader of the media layer
    (`MediaReader` / `FrameFolderReader`: how `AVCPNetProcessor` passes a file it has opened for its soundtrack too),
    or an already decoded array `(T, H, W, 3)` uint8 (numpy or torch), optionally as a `(array, metadata)` tuple as
    returned by `transformers.video_utils.load_video`. A list of these is a batch.

    Besides the base class's arguments (`return_tensors` defaults to `"pt"`): `training` and `generator` (see
    `AVCPNetVideoProcessorKwargs`). `do_sample_frames=True` (default) samples `num_segments * frames_per_segment`
    frames per clip; `num_frames`, when given, must equal that product (the model's input size), and `fps` sampling
    is not supported. With `do_sample_frames=False` a clip must already hold exactly that many frames.
    A video that cannot be decoded raises `MediaError` (a `ValueError` naming the file and the problem); leaving bad
    files out of a batch is `AVCPNetProcessor`'s `skip_bad_files`.
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
    return_tensors = "pt"
    num_segments = 16
    frames_per_segment = 8
    augment_probability = 0.3
    max_rotation_degrees = 20.0
    brightness_range = [0.5, 1.0]
    decode_threads = 0
    training = False
    generator = None
    valid_kwargs = AVCPNetVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    @property
    def num_frames_per_clip(self) -> int:
        return self.num_segments * self.frames_per_segment

    # -- sampling (BaseVideoProcessor hook) -----------------------------------------------------------------------

    def sample_frames(self, metadata: VideoMetadata, num_frames: Optional[int] = None, fps: Optional[float] = None,
                      training: bool = False, generator: Optional[torch.Generator] = None,
                      num_segments: Optional[int] = None, frames_per_segment: Optional[int] = None,
                      **kwargs) -> np.ndarray:
        """Frame indices to decode for the clip `metadata` describes (see `sample_indices`)."""
        segments = num_segments or self.num_segments
        length = frames_per_segment or self.frames_per_segment
        if fps is not None:
            raise ValueError(f"{type(self).__name__} samples {segments} segments of {length} frames; sampling by "
                             "fps is not supported (leave fps unset)")
        if num_frames is not None and num_frames != segments * length:
            raise ValueError(f"{type(self).__name__} takes exactly num_segments * frames_per_segment = "
                             f"{segments} * {length} = {segments * length} frames per clip, got num_frames={num_frames}")
        return self.sample_indices(metadata.total_num_frames, training, generator, segments, length)

    def sample_indices(self, num_frames: int, training: bool = False, generator: Optional[torch.Generator] = None,
                       num_segments: Optional[int] = None, frames_per_segment: Optional[int] = None) -> np.ndarray:
        """Frame indices to decode for a clip of `num_frames` frames: `(num_segments * frames_per_segment,)` int64,
        segment after segment. Evaluation: the centred snippet of each segment (deterministic). Training: a
        random snippet per segment. Clips shorter than `num_segments * frames_per_segment` frames are loop-padded:
        the indices run through the clip and wrap around (at a random starting frame when training)."""
        segments, length = num_segments or self.num_segments, frames_per_segment or self.frames_per_segment
        total = segments * length
        if not num_frames or num_frames <= 0:
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

    # -- decoding (BaseVideoProcessor hook) -----------------------------------------------------------------------

    def _decode_and_sample_videos(self, videos, video_metadata=None, do_sample_frames: Optional[bool] = None,
                                  sample_indices_fn: Optional[Callable] = None):
        """Decode the sampled frames of every video: `(list of (T, H, W, 3) uint8 arrays, list of VideoMetadata)`.

        Media files are decoded with their short side resized to this processor's `size["shortest_edge"]` inside
        FFmpeg (`_preprocess` resizes again only when a call asks for another size).
        """
        videos = make_video_list(videos)
        if isinstance(video_metadata, (VideoMetadata, dict)):
            video_metadata = [video_metadata]
        if video_metadata is not None and len(video_metadata) != len(videos):
            raise ValueError(f"got {len(videos)} videos but {len(video_metadata)} video_metadata entries")
        frames, metadata = [], []
        for position, video in enumerate(videos):
            given = video_metadata[position] if video_metadata is not None else None
            clip, clip_metadata = self.decode_video(video, sample_indices_fn if do_sample_frames else None, given)
            frames.append(clip)
            metadata.append(clip_metadata)
        return frames, metadata

    def decode_video(self, video: Any, sample_indices_fn: Optional[Callable] = None,
                     metadata: Optional[VideoMetadata] = None) -> tuple[np.ndarray, VideoMetadata]:
        """The frames of one video, `(T, H, W, 3)` uint8, and its `VideoMetadata` (`frames_indices`: the frames
        taken). `sample_indices_fn(metadata=...)` chooses the frames (all of them when None)."""
        if isinstance(video, tuple) and len(video) == 2 and isinstance(video[0], (np.ndarray, torch.Tensor)):
            video, metadata = video  # (array, metadata) as returned by load_video: sampling is by frame index
        if isinstance(video, (np.ndarray, torch.Tensor)):
            array = _as_uint8_frames(video)
            metadata = _metadata_for(metadata, total_num_frames=len(array))
            indices = _indices(sample_indices_fn, metadata)
            metadata.frames_indices = indices if indices is not None else np.arange(len(array))
            return (array[indices] if indices is not None else array), metadata
        if hasattr(video, "read_frames"):  # an open media-layer reader: the caller closes it
            return self._read(video, sample_indices_fn, metadata)
        if isinstance(video, os.PathLike):
            video = os.fspath(video)
        with open_video(video, threads=self.decode_threads) as reader:
            return self._read(reader, sample_indices_fn, metadata)

    def _read(self, reader, sample_indices_fn, metadata) -> tuple[np.ndarray, VideoMetadata]:
        metadata = _metadata_for(metadata, total_num_frames=reader.num_frames, fps=getattr(reader, "fps", None),
                                 video_backend="pyav")
        indices = _indices(sample_indices_fn, metadata)
        metadata.frames_indices = indices if indices is not None else np.arange(reader.num_frames)
        shortest_edge = self._decode_size()
        if reader.resizes_while_decoding:  # a media file: resize inside FFmpeg's scaler
            return reader.read_frames(metadata.frames_indices, shortest_edge=shortest_edge), metadata
        return self._resize_array(reader.read_frames(metadata.frames_indices), shortest_edge), metadata

    def _decode_size(self) -> Optional[int]:
        size = self.size
        shortest_edge = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
        return shortest_edge if self.do_resize else None

    def _resize_array(self, frames: np.ndarray, shortest_edge: Optional[int]) -> np.ndarray:
        """Resize `(T, H, W, 3)` uint8 frames so that the short side is `shortest_edge` (antialiased bilinear)."""
        if not shortest_edge or min(frames.shape[1:3]) == shortest_edge:
            return frames
        tensor = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2)
        return self._resize_tensor(tensor, shortest_edge).permute(0, 2, 3, 1).contiguous().numpy()

    @staticmethod
    def _resize_tensor(video: torch.Tensor, shortest_edge: int) -> torch.Tensor:
        """`(T, 3, H, W)` -> short side `shortest_edge`, the same output size as FFmpeg's path (`output_size`)."""
        target = list(output_size(video.shape[-2], video.shape[-1], shortest_edge))
        return tvF.resize(video, target, interpolation=tvF.InterpolationMode.BILINEAR, antialias=True)

    # -- transforms (BaseVideoProcessor hook) ---------------------------------------------------------------------

    def _preprocess(self, videos: list[torch.Tensor], do_resize: bool, size: SizeDict, do_center_crop: bool,
                    crop_size: SizeDict, do_rescale: bool, rescale_factor: float, do_normalize: bool,
                    image_mean, image_std, return_tensors=None, training: bool = False,
                    generator: Optional[torch.Generator] = None, num_segments: Optional[int] = None,
                    frames_per_segment: Optional[int] = None, augment_probability: Optional[float] = None,
                    max_rotation_degrees: Optional[float] = None, brightness_range=None,
                    **kwargs) -> BatchFeature:
        """Resize (when needed), crop, augment (training) and normalise each `(T, 3, H, W)` clip into
        `(num_segments, frames_per_segment, 3, crop_height, crop_width)` float32, stacked over the batch."""
        segments, length = num_segments or self.num_segments, frames_per_segment or self.frames_per_segment
        augment = dict(probability=self.augment_probability if augment_probability is None else augment_probability,
                       degrees=max_rotation_degrees if max_rotation_degrees is not None else self.max_rotation_degrees,
                       brightness=brightness_range if brightness_range is not None else self.brightness_range)
        clips = []
        for video in videos:
            if video.shape[0] != segments * length:
                raise ValueError(f"a clip must have num_segments * frames_per_segment = {segments * length} frames, "
                                 f"got {video.shape[0]}; use do_sample_frames=True")
            if do_resize and size.shortest_edge and min(video.shape[-2:]) != size.shortest_edge:
                video = self._resize_tensor(video, size.shortest_edge)
            crop_h, crop_w = crop_size.height, crop_size.width
            if training:
                video = self._random_crop(video, crop_h, crop_w, generator)
                video = self._augment(video, generator, **augment)
            elif do_center_crop:
                video = tvF.center_crop(video, [crop_h, crop_w])
            video = video.float()  # a new tensor: the steps below work in place (a DataLoader worker's time)
            if do_rescale:
                video.mul_(rescale_factor)
            if do_normalize:
                video.sub_(torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1))
                video.div_(torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1))
            clips.append(video.reshape(segments, length, *video.shape[1:]))
        if return_tensors is None:
            pixel_values = clips
        elif len(clips) == 1:
            pixel_values = clips[0].unsqueeze(0)  # no copy
        elif clips:
            pixel_values = torch.stack(clips)
        else:
            pixel_values = torch.zeros(0, segments, length, 3, crop_size.height, crop_size.width)
        return BatchFeature(data={"pixel_values_videos": pixel_values}, tensor_type=return_tensors)

    def _random_crop(self, video: torch.Tensor, crop_h: int, crop_w: int, generator) -> torch.Tensor:
        """One of five crops (centre or a corner), the same for every frame, as the public code's training crop."""
        height, width = video.shape[-2:]
        if height < crop_h or width < crop_w:
            return tvF.center_crop(video, [crop_h, crop_w])  # pads
        position = int(torch.randint(5, (1,), generator=generator))
        top = {0: (height - crop_h) // 2, 1: 0, 2: 0, 3: height - crop_h, 4: height - crop_h}[position]
        left = {0: (width - crop_w) // 2, 1: 0, 2: width - crop_w, 3: 0, 4: width - crop_w}[position]
        return video[..., top:top + crop_h, left:left + crop_w]

    @staticmethod
    def _augment(video: torch.Tensor, generator, probability: float, degrees: float, brightness) -> torch.Tensor:
        """With probability `probability`, one of flip, rotation, brightness (the same for the whole clip)."""
        draws = torch.rand(3, generator=generator)
        if float(draws[0]) >= probability:
            return video
        choice = int(draws[1] * 3) % 3
        if choice == 0:
            return tvF.horizontal_flip(video)
        if choice == 1:
            angle = (2 * float(draws[2]) - 1) * degrees
            return tvF.rotate(video, angle, interpolation=tvF.InterpolationMode.BILINEAR)
        low, high = brightness
        return tvF.adjust_brightness(video, low + (high - low) * float(draws[2]))

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in ("training", "generator"):  # call-time arguments, not settings
            output.pop(key, None)
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


def _as_uint8_frames(video) -> np.ndarray:
    """A decoded video as `(T, H, W, 3)` uint8 (from `(T, C, H, W)` too; grey frames repeated to RGB)."""
    array = video.numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
    if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[0] == 0:
        raise MediaError("<array>", f"a decoded video must be (T, H, W, 3) with T > 0, got {array.shape}")
    if array.dtype != np.uint8:
        raise MediaError("<array>", f"a decoded video must be uint8 RGB, got {array.dtype}")
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def _metadata_for(given, total_num_frames: int, **fields) -> VideoMetadata:
    """The metadata of a clip: the count from the decoder, other fields from what the caller gave, if anything."""
    known = dict(given) if given is not None else {}
    known = {key: value for key, value in known.items() if key in VideoMetadata.__dataclass_fields__}
    known.update({key: value for key, value in fields.items() if value is not None and known.get(key) is None})
    known["total_num_frames"] = total_num_frames
    known.pop("frames_indices", None)
    return VideoMetadata(**known)


def _indices(sample_indices_fn, metadata: VideoMetadata) -> Optional[np.ndarray]:
    return np.asarray(sample_indices_fn(metadata=metadata), dtype=np.int64) if sample_indices_fn else None


__all__ = ["AVCPNetVideoProcessor", "make_video_list"]
