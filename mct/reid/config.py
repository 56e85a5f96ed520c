"""Re-ID configuration (owned by ``mct.reid``): the embedder and its training.

``EmbedderConfig`` is the ``reid:`` section of a pipeline config and also the ``model:``
section of a re-ID training config (there, ``weights`` is the initialisation).
``ReidTrainConfig`` is the whole file read by ``mct train-reid``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mct.schema import StrictModel

__all__ = ["ARCHS", "EmbedderConfig", "ReidCropConfig", "ReidTrainConfig", "ReidAdaptConfig"]

#: The backbones; ``compact`` is the small width-reduced ResNet of the shipped demo model.
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "compact")


class EmbedderConfig(StrictModel):
    """The appearance embedder applied to every detection (and the model of training)."""

    enabled: bool = True
    #: one of :data:`ARCHS`.
    arch: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "compact"] = "resnet18"
    #: ``imagenet`` (torchvision's cached file), a project checkpoint path (it records
    #: arch, crop size, pooling; those then win over this config), or ``none`` (random init).
    weights: str = "none"
    #: every box is cropped and resized to this many pixels (256 x 256 suits vehicles).
    crop_height: int = Field(default=256, gt=0)
    crop_width: int = Field(default=256, gt=0)
    #: boxes per forward pass; any number of boxes is embedded in chunks of this size.
    batch_size: int = Field(default=64, gt=0)
    #: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda``, ``cuda:1``, ...
    device: str = "auto"
    #: half precision on a GPU (ignored on the CPU).
    fp16: bool = True
    #: 1 keeps layer4 at twice the resolution (the re-ID "strong baseline"); 2 = torchvision.
    last_stride: Literal[1, 2] = 1
    pooling: Literal["avg", "gem"] = "avg"
    #: the GeM exponent (1 = average pooling, large = max pooling); used when pooling is gem.
    gem_p: float = Field(default=3.0, ge=1.0)
    #: average each feature with the one of the horizontally flipped crop.
    flip: bool = False
    #: channel widths of the four stages of the ``compact`` arch (torchvision BasicBlocks).
    compact_widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    #: BasicBlocks per stage of the ``compact`` arch.
    compact_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)


class ReidCropConfig(StrictModel):
    """Which ground-truth boxes become training / evaluation crops."""

    #: boxes smaller than this (pixels, after clipping to the frame) are dropped.
    min_box_width: int = Field(default=24, ge=1)
    min_box_height: int = Field(default=24, ge=1)
    #: boxes whose area is covered more than this fraction by other gt boxes are dropped.
    max_occlusion: float = Field(default=0.4, ge=0.0, le=1.0)
    #: crops kept per (identity, camera) track, evenly spread over the track's frames.
    crops_per_track: int = Field(default=8, ge=1)
    #: the crop cache (``<cache_dir>/<split>_<hash>.npz``); relative to the working folder.
    cache_dir: str = "data/cache/reid"


class ReidTrainConfig(StrictModel):
    """A ``mct train-reid`` config: data, model, sampler, losses, augmentation, schedule."""

    name: str = "reid"
    seed: int = 0
    #: AI City layout root; identities come from ``<split>/*/*/gt/gt.txt``.
    data_root: str = "data/demo"
    train_split: str = "train"
    #: held-out split evaluated after training (and every ``eval_every_epochs``); ``""`` = none.
    val_split: str = "validation"
    #: scenarios of each split to use (empty = all).
    train_scenarios: tuple[str, ...] = ()
    val_scenarios: tuple[str, ...] = ()
    crops: ReidCropConfig = Field(default_factory=ReidCropConfig)
    model: EmbedderConfig = Field(default_factory=lambda: EmbedderConfig(weights="imagenet"))
    out_dir: str = "runs/reid"
    #: P identities x K images per batch (batch-hard triplet needs K >= 2).
    num_identities: int = Field(default=16, ge=2)
    num_instances: int = Field(default=4, ge=2)
    epochs: int = Field(default=30, ge=1)
    #: batches per epoch; 0 = (number of crops) / (P x K).
    batches_per_epoch: int = Field(default=0, ge=0)
    lr: float = Field(default=3.5e-4, gt=0)
    weight_decay: float = Field(default=5e-4, ge=0)
    #: linear warm-up from lr / 10, then cosine decay to lr / 100.
    warmup_epochs: int = Field(default=2, ge=0)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    triplet_margin: float = Field(default=0.3, gt=0)
    ce_weight: float = Field(default=1.0, ge=0)
    triplet_weight: float = Field(default=1.0, ge=0)
    flip_prob: float = Field(default=0.5, ge=0, le=1)
    #: pad-crop: pad by this many pixels (reflect) and crop back at a random offset.
    pad_pixels: int = Field(default=10, ge=0)
    erasing_prob: float = Field(default=0.5, ge=0, le=1)
    #: edge truncation: with this probability a crop keeps only a band along one side (a
    #: random side; ``truncate_min_keep``..1 of its width or height), stretched back to the
    #: crop size. This is what a vehicle cut by the frame edge looks like at run time (the
    #: clipped box is resized to the crop). 0 = off (the shipped model before it).
    truncate_prob: float = Field(default=0.0, ge=0, le=1)
    truncate_min_keep: float = Field(default=0.4, gt=0, le=1)
    #: photometric augmentation (0 = off, the shipped demo model): brightness, contrast
    #: and saturation each scaled by a factor in [1 - j, 1 + j], and each colour channel by
    #: one in [1 - j/2, 1 + j/2] (a camera's colour cast)
    colour_jitter: float = Field(default=0.0, ge=0, lt=1)
    #: Gaussian blur (sigma 0.5-1.5 px) with this probability: far or defocused vehicles
    blur_prob: float = Field(default=0.0, ge=0, le=1)
    #: a JPEG round trip at a quality drawn from ``jpeg_quality`` with this probability:
    #: a compressed camera stream
    jpeg_prob: float = Field(default=0.0, ge=0, le=1)
    jpeg_quality: tuple[int, int] = (30, 90)
    #: grey crops with this probability (night footage, colour that cannot be trusted)
    grayscale_prob: float = Field(default=0.0, ge=0, le=1)
    #: mixed precision (autocast, bfloat16) when training on CUDA; ignored on the CPU
    amp: bool = True
    #: stop after this many minutes even before ``epochs`` (0 = no limit); the learning
    #: rate schedule then follows elapsed time (whichever is further along)
    max_minutes: float = Field(default=0.0, ge=0)
    #: torch CPU threads (the training machines are small and shared).
    num_threads: int = Field(default=2, ge=1)
    #: write ``last.pt`` every this many epochs (and always at the end).
    checkpoint_every_epochs: int = Field(default=1, ge=1)
    #: evaluate on ``val_split`` every this many epochs (0 = only at the end).
    eval_every_epochs: int = Field(default=0, ge=0)
    #: continue from ``<out_dir>/last.pt`` when it exists.
    resume: bool = True

    @model_validator(mode="after")
    def _check_losses(self) -> "ReidTrainConfig":
        if self.ce_weight == 0 and self.triplet_weight == 0:
            raise ValueError("ce_weight and triplet_weight are both 0: nothing to train")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality: {list(self.jpeg_quality)} must be 1 <= low <= high <= 100")
        return self


class ReidAdaptConfig(StrictModel):
    """A ``mct adapt`` config: fine-tune a re-ID model on a scenario's own video, no labels.

    The tracklets and the cross-camera association of a first run (``run_dir``) give the
    training signal: crops of one tracklet are one vehicle; two tracklets alive at the same
    time in one camera are two vehicles; tracklets of different cameras that the first run
    gave one global id, with a cosine similarity of at least ``min_cross_camera_cosine``,
    are one vehicle. Nothing else is assumed (two tracklets of different cameras with
    different global ids are neither a positive nor a negative).
    """

    name: str = "adapt"
    seed: int = 0
    #: the first run's folder (``mct run``): its ``config.yaml``, ``cameras/*/tracklets.npz``
    #: and ``association/assignment.csv``
    run_dir: str
    #: the model to adapt; "" = the first run's ``reid.weights``. Never overwritten.
    weights: str = ""
    #: checkpoints, loss log, and the adapted model ``<out_dir>/model.pt``
    out_dir: str = "runs/adapt"
    #: tracklets with fewer boxes of at least ``min_box_px`` on each side are not used
    min_tracklet_boxes: int = Field(default=10, ge=2)
    min_box_px: int = Field(default=16, ge=1)
    #: crops per tracklet, evenly spread over its usable boxes
    crops_per_tracklet: int = Field(default=12, ge=2)
    #: fewer usable tracklets than this, or fewer with a concurrent one in their camera
    #: (``min_tracklets // 2``), and adapt refuses: the model is left as it is
    min_tracklets: int = Field(default=20, ge=2)
    #: two tracklets of one camera are concurrent (two vehicles) when they share this many frames
    min_overlap_frames: int = Field(default=1, ge=1)
    #: cross-camera positives: tracklets of one global id whose features are this similar
    use_cross_camera: bool = True
    min_cross_camera_cosine: float = Field(default=0.5, ge=-1, le=1)
    #: batches: P pseudo-identities (a seed and vehicles concurrent with it) x K crops
    num_identities: int = Field(default=16, ge=2)
    num_instances: int = Field(default=4, ge=2)
    steps: int = Field(default=300, ge=1)
    lr: float = Field(default=1e-4, gt=0)
    weight_decay: float = Field(default=5e-4, ge=0)
    triplet_margin: float = Field(default=0.3, gt=0)
    #: augmentation, as in :class:`ReidTrainConfig`
    flip_prob: float = Field(default=0.5, ge=0, le=1)
    pad_pixels: int = Field(default=8, ge=0)
    erasing_prob: float = Field(default=0.5, ge=0, le=1)
    colour_jitter: float = Field(default=0.2, ge=0, lt=1)
    blur_prob: float = Field(default=0.2, ge=0, le=1)
    #: ``auto`` (cuda when available), ``cpu`` or ``cuda``; bfloat16 autocast on CUDA with ``amp``
    device: str = "auto"
    amp: bool = True
    num_threads: int = Field(default=2, ge=1)
    checkpoint_every_steps: int = Field(default=50, ge=1)
    resume: bool = True
