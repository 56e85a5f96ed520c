"""Detector configuration (owned by ``mct.detect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from mct.schema import StrictModel

#: the repository root: relative checkpoint paths are also looked up from here.
REPO_ROOT = Path(__file__).resolve().parents[2]


def find_weights_file(weights: str) -> Path | None:
    """The checkpoint file ``weights`` names: the path as given, else relative to the
    repository (so shipped models are found from any working directory); ``None`` if neither."""
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and (REPO_ROOT / path).is_file():
        return REPO_ROOT / path
    return None

#: project class ids (``Detections.class_ids``); 0 is a vehicle of unknown type (detection
#: and gt files carry no class).
PROJECT_CLASSES: tuple[str, ...] = ("vehicle", "car", "motorcycle", "bus", "truck")

#: COCO category id -> project class id: car 3, motorcycle 4, bus 6, truck 8. The shipped
#: demo detector is trained with the same COCO ids (the synthetic world writes them).
COCO_VEHICLES: dict[int, int] = {3: 1, 4: 2, 6: 3, 8: 4}


class SoftNMSConfig(StrictModel):
    """Soft-NMS (Bodla et al. 2017); ``method: hard`` is classic NMS."""

    method: Literal["linear", "gaussian", "hard"] = "gaussian"
    #: IoU threshold Nt for linear and hard decay (authors' default 0.3).
    iou_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    #: gaussian decay width (authors' default 0.5).
    sigma: float = Field(default=0.5, gt=0.0)
    #: a box is dropped once its decayed score falls below this (authors' default 0.001).
    min_score: float = Field(default=0.001, ge=0.0, le=1.0)
    #: the authors' "+1 pixel" area convention (``w = x2 - x1 + 1``); default: modern (torchvision).
    plus_one_area: bool = False
    #: gaussian: multiply by ``exp(-o**2 / sigma)`` per decay, bit-identical to the paper's
    #: per-box loop; default: sums in the log domain (about 1e-15 relative from it, ~3x
    #: faster on clustered boxes). Linear and hard are always exact.
    exact: bool = False
    #: boxes of different classes decay each other too (one Soft-NMS over all classes),
    #: so a vehicle the classifier scores as both car and truck gives one box, not two
    #: overlapping ones that start two tracks. Default: per class, as torchvision.
    class_agnostic: bool = False


class DetectorConfig(StrictModel):
    """Which detector runs, and the filters applied to its output.

    The filters (``classes``, ``min_score``, ``min_area``, ``roi_rule``) apply to every
    source alike: Mask R-CNN, detection files and gt boxes.
    """

    #: ``maskrcnn`` runs torchvision Mask R-CNN; ``file`` reads ``det/<det_file>``; ``gt`` feeds gt boxes.
    source: Literal["maskrcnn", "file", "gt"] = "file"
    det_file: str = "det_sim.txt"
    #: the gt source reads this file, relative to the camera folder (scores are 1).
    gt_file: str = "gt/gt.txt"
    #: boxes scoring below this are dropped (after Soft-NMS for Mask R-CNN).
    min_score: float = Field(default=0.3, ge=0.0, le=1.0)
    #: boxes smaller than this many square pixels are dropped.
    min_area: float = Field(default=0.0, ge=0.0)
    #: ROI rule: ``bottom_centre`` keeps a box whose bottom-centre pixel (the point where the
    #: vehicle touches the road) is inside the camera's ROI; ``all_corners`` keeps a box whose
    #: corners inside the image are all in the ROI (the AI City evaluation's filter);
    #: ``none`` ignores the ROI. Cameras without a ROI mask keep everything.
    roi_rule: Literal["bottom_centre", "all_corners", "none"] = "bottom_centre"
    #: project classes kept (names from ``PROJECT_CLASSES``); file and gt boxes are "vehicle".
    classes: tuple[str, ...] = ("vehicle", "car", "motorcycle", "bus", "truck")
    soft_nms: SoftNMSConfig = Field(default_factory=SoftNMSConfig)

    # ---- Mask R-CNN (source: maskrcnn)
    #: ``small`` is the CPU demo model; ``resnet50_fpn`` / ``resnet50_fpn_v2`` are torchvision's.
    model: Literal["small", "resnet50_fpn", "resnet50_fpn_v2"] = "small"
    #: ``coco`` (torchvision's COCO checkpoint from its cache), ``none`` (random init, for
    #: tests), or a checkpoint path (relative: to the working folder, then the repository).
    weights: str = "models/detector_demo.pt"
    #: may ``weights: coco`` download the checkpoint when it is not in torch's cache.
    allow_download: bool = True
    #: model label -> project class id; labels not listed are dropped. Empty: COCO vehicles
    #: (car, motorcycle, bus, truck), which fits torchvision's COCO models and the demo model.
    label_map: dict[int, int] = Field(default_factory=dict)
    #: ``auto`` = CUDA when available.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: frames per forward pass.
    batch_size: int = Field(default=4, ge=1)
    #: shorter / longer side the model resizes to (0 = the model's default: 800/1333 for
    #: the ResNet-50 models, the trained size for the demo model).
    min_size: int = Field(default=0, ge=0)
    max_size: int = Field(default=0, ge=0)
    #: the RoI heads' own score threshold before Soft-NMS (torchvision's box_score_thresh).
    model_score_thresh: float = Field(default=0.05, ge=0.0, le=1.0)
    #: the RoI heads' top-k cut after Soft-NMS (torchvision's box_detections_per_img).
    max_detections_per_img: int = Field(default=100, ge=1)
    #: RPN proposals kept per image at test time (0 = the model's default).
    rpn_post_nms_top_n_test: int = Field(default=0, ge=0)
    #: ``roi``: masks at RoI resolution, box-relative (cheap); ``full``: full-frame masks
    #: (100 full-HD masks are about 800 MB); ``none``: no masks.
    masks: Literal["roi", "full", "none"] = "roi"
    #: fp16 autocast on CUDA.
    amp: bool = True
    #: torch CPU threads (0 = leave torch's setting alone).
    num_threads: int = Field(default=0, ge=0)


class DetectorTrainConfig(StrictModel):
    """``mct train-detector``: train or fine-tune Mask R-CNN on AI City layout scenes.

    Boxes (and masks) come from ``<camera>/segm/coco_instances.json`` when a camera has
    one (the synthetic world writes it: every visible vehicle, with RLE masks); otherwise
    from ``gt/gt.txt``, box-only (rectangle masks whose loss is not used).
    """

    #: AI City layout folder (relative paths: to the working folder).
    root: str = "data/demo"
    train_split: str = "train"
    train_scenarios: tuple[str, ...] = ()
    val_split: str = "validation"
    val_scenarios: tuple[str, ...] = ()
    #: architecture, as ``DetectorConfig.model``.
    model: Literal["small", "resnet50_fpn", "resnet50_fpn_v2"] = "small"
    #: start from: ``none`` (random init), ``coco`` (fine-tune torchvision's COCO model) or a checkpoint.
    init_weights: str = "none"
    #: classes of the model including background; labels are COCO category ids (car 3, bus 6,
    #: truck 8), so 9 covers the synthetic world; 91 keeps COCO's head when fine-tuning.
    num_classes: int = Field(default=9, ge=2)
    min_size: int = Field(default=360, ge=32)
    max_size: int = Field(default=640, ge=32)
    #: use every n-th annotated frame of each training / validation video.
    frame_stride: int = Field(default=3, ge=1)
    val_frame_stride: int = Field(default=10, ge=1)
    #: at most this many validation frames (0 = all sampled ones).
    max_val_frames: int = Field(default=0, ge=0)
    batch_size: int = Field(default=4, ge=1)
    #: optimisation steps in total (the schedule is cosine over them, after a linear warm-up).
    max_iters: int = Field(default=1000, ge=1)
    warmup_iters: int = Field(default=100, ge=0)
    #: AdamW learning rate and weight decay.
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    #: random horizontal flips.
    hflip: bool = True
    #: train on random crops of this ``[height, width]`` (pixels; empty = whole frames).
    #: Cheaper steps on a CPU.
    crop_size: tuple[int, ...] = ()
    #: a box cut by a crop stays a target (clipped to the crop) when at least this fraction
    #: of its area is inside ... A box left out is not ignored: its visible part trains as
    #: background, so a high fraction teaches the model to miss vehicles cut by the frame
    #: edge, which the AI City annotation (and the synthetic world's) boxes as their visible
    #: part. 0.5 was the rule of the first shipped model.
    crop_min_kept_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    #: ... and at least this many pixels of its width and of its height (the annotation
    #: rule's smallest box is 10 x 10 px).
    crop_min_box_px: int = Field(default=1, ge=1)
    #: sampled RoIs per image for the box head during training (torchvision: 512).
    box_batch_size_per_image: int = Field(default=128, ge=16)
    #: stop after this many minutes of training even before ``max_iters`` (0 = no limit);
    #: the cosine schedule then follows elapsed time (whichever is further along).
    max_minutes: float = Field(default=0.0, ge=0.0)
    seed: int = 0
    #: torch CPU threads (0 = torch's default).
    num_threads: int = Field(default=2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: checkpoints (``last.pt``, resumable) and logs go here.
    out_dir: str = "runs/train_detector"
    checkpoint_every: int = Field(default=100, ge=1)
    #: resume from ``<out_dir>/last.pt`` when it exists.
    resume: bool = True
    #: the final fp16 model file.
    output: str = "models/detector_demo.pt"
    #: validation AP: annotations below these are ignored (COCO "iscrowd"), following the
    #: synthetic world's annotation rule (min visible fraction 0.2, boxes >= 10x10 px).
    eval_min_visible_fraction: float = Field(default=0.2, ge=0, le=1)
    eval_min_box_px: int = Field(default=10, ge=0)
    #: the detector settings used for validation (Soft-NMS, the model's score threshold and
    #: top-k); its ``min_score`` and ROI filter are not applied (AP ranks every box).
    eval_detector: DetectorConfig = Field(
        default_factory=lambda: DetectorConfig(source="maskrcnn", min_score=0.0, roi_rule="none", masks="none")
    )
