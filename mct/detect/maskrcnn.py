"""torchvision Mask R-CNN with Soft-NMS in its RoI heads.

Models (``DetectorConfig.model``):

* ``resnet50_fpn`` / ``resnet50_fpn_v2``: torchvision's Mask R-CNN, for real use (COCO
  weights through torchvision's cache, or a fine-tuned checkpoint).
* ``small``: the CPU demo model, built here: a narrow residual backbone (widths 16-128,
  strides 8-32) with a 48-channel FPN, a 256-d box head, a two-conv mask head and 100
  RPN proposals at test time. About 1.3 M parameters (under 3 MB in fp16).

Soft-NMS replaces the hard NMS of ``RoIHeads.postprocess_detections`` (see
:class:`SoftNMSRoIHeads`); the heads' own score threshold and top-k cut apply after it.
Masks stay at RoI resolution (``(N, 28, 28)``, box-relative) unless full-frame masks are
asked for.

Checkpoint file (``models/detector_demo.pt``, written by :func:`save_checkpoint`): a
``torch.save`` dict with ``format`` (``"mct-detector-1"``), ``model`` (the architecture
name), ``num_classes``, ``min_size``, ``max_size``, ``state_dict`` (fp16 floats) and
``meta`` (training config, validation AP); it loads with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import urllib.error
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import MultiScaleRoIAlign, boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from mct.checkpoint import load_checkpoint_file
from mct.detect.config import COCO_VEHICLES, REPO_ROOT, DetectorConfig, SoftNMSConfig, find_weights_file
from mct.detect.filters import apply_filters
from mct.detect.soft_nms import soft_nms_from_config
from mct.types import Camera, Detections

log = logging.getLogger(__name__)

__all__ = [
    "MaskRCNNDetector",
    "SoftNMSRoIHeads",
    "build_model",
    "use_soft_nms",
    "load_weights",
    "save_checkpoint",
    "coco_weights_file",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "mct-detector-1"

#: defaults per model: (min_size, max_size, rpn_post_nms_top_n_test)
_MODEL_DEFAULTS = {
    "resnet50_fpn": (800, 1333, 1000),
    "resnet50_fpn_v2": (800, 1333, 1000),
    "small": (360, 640, 100),
}


# ---------------------------------------------------------------------------- Soft-NMS heads
class SoftNMSRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` with Soft-NMS in ``postprocess_detections``.

    The order of the cuts is torchvision's: drop the background, drop boxes at or below
    ``score_thresh``, drop empty boxes, NMS per class, keep the top ``detections_per_img``
    — with Soft-NMS in place of NMS and the score cut applied again to the decayed scores.
    Dropping the boxes below ``score_thresh`` before Soft-NMS changes nothing: such a box
    is selected only after every box above the threshold, so it never decays one, and its
    own score can only fall. ``method: hard`` calls ``torchvision.ops.batched_nms``.

    Attach with :func:`use_soft_nms` (it sets ``soft_nms_cfg`` and swaps the class of the
    existing heads, keeping their weights).
    """

    soft_nms_cfg: SoftNMSConfig

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):  # type: ignore[override]
        device = class_logits.device
        num_classes = class_logits.shape[-1]
        boxes_per_image = [len(p) for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals)
        pred_scores = F.softmax(class_logits, -1)
        all_boxes, all_scores, all_labels = [], [], []
        cfg = self.soft_nms_cfg
        for boxes, scores, image_shape in zip(
            pred_boxes.split(boxes_per_image, 0), pred_scores.split(boxes_per_image, 0), image_shapes
        ):
            boxes = box_ops.clip_boxes_to_image(boxes, image_shape)
            labels = torch.arange(num_classes, device=device).view(1, -1).expand_as(scores)
            boxes = boxes[:, 1:].reshape(-1, 4)
            scores = scores[:, 1:].reshape(-1)
            labels = labels[:, 1:].reshape(-1)
            inds = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[inds], scores[inds], labels[inds]
            keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            if cfg.method == "hard":
                if cfg.class_agnostic:
                    keep = box_ops.nms(boxes, scores, cfg.iou_threshold)
                else:
                    keep = box_ops.batched_nms(boxes, scores, labels, cfg.iou_threshold)
                kept_scores = scores[keep]
            else:
                keep, kept_scores = soft_nms_from_config(
                    boxes.float(), scores.float(), None if cfg.class_agnostic else labels, cfg
                )
                kept_scores = kept_scores.to(scores.dtype)
                above = kept_scores > self.score_thresh
                keep, kept_scores = keep[above], kept_scores[above]
            keep, kept_scores = keep[: self.detections_per_img], kept_scores[: self.detections_per_img]
            all_boxes.append(boxes[keep])
            all_scores.append(kept_scores)
            all_labels.append(labels[keep])
        return all_boxes, all_scores, all_labels


def use_soft_nms(model: MaskRCNN, cfg: SoftNMSConfig) -> MaskRCNN:
    """Make ``model``'s RoI heads use Soft-NMS (in place; returns the model)."""
    heads = model.roi_heads
    if not isinstance(heads, RoIHeads):
        raise TypeError(f"expected torchvision RoIHeads, got {type(heads).__name__}")
    heads.__class__ = SoftNMSRoIHeads
    heads.soft_nms_cfg = cfg  # type: ignore[attr-defined]
    return model


# ---------------------------------------------------------------------------- the small model
def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class _Residual(nn.Module):
    """3x3 conv -> 3x3 conv with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


class SmallBody(nn.Module):
    """Narrow residual network; returns stride 8, 16 and 32 features as ``{"0", "1", "2"}``."""

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(_conv_bn(3, 16, 2), _conv_bn(16, w0, 2))  # stride 4
        self.layer2 = nn.Sequential(_conv_bn(w0, w1, 2), _Residual(w1))  # stride 8
        self.layer3 = nn.Sequential(_conv_bn(w1, w2, 2), _Residual(w2))  # stride 16
        self.layer4 = nn.Sequential(_conv_bn(w2, w3, 2), _Residual(w3))  # stride 32
        self.out_channels_list = [w1, w2, w3]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c2 = self.layer2(self.stem(x))
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return {"0": c2, "1": c3, "2": c4}


class _SmallBackbone(nn.Module):
    """:class:`SmallBody` + torchvision FPN (48 channels) + max-pool level (stride 64)."""

    def __init__(self, fpn_channels: int = 48) -> None:
        super().__init__()
        self.body = SmallBody()
        self.fpn = torchvision.ops.FeaturePyramidNetwork(
            self.body.out_channels_list, fpn_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x))


def _small_model(num_classes: int, **kwargs: Any) -> MaskRCNN:
    # sized for >= 5 frames/s at 640x360 on 2 CPU cores: ~1.1 GFLOP for backbone + RPN
    # (widths 16-128, FPN 48 channels; 24-160 / 64 channels was 1.95 GFLOP)
    ch = 48
    backbone = _SmallBackbone(ch)
    # one anchor size per level (strides 8, 16, 32, 64), two scales each
    anchors = AnchorGenerator(sizes=((16, 24), (32, 48), (64, 96), (128, 192)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    names = ["0", "1", "2", "pool"]
    box_pool = MultiScaleRoIAlign(featmap_names=names[:3], output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(featmap_names=names[:3], output_size=14, sampling_ratio=2)
    box_head = TwoMLPHead(ch * 7 * 7, 256)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    return MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=box_pool,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(256, num_classes),
        mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(ch, [ch, ch], 1),
        mask_predictor=MaskRCNNPredictor(ch, ch, num_classes),
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        box_batch_size_per_image=256,
        **kwargs,
    )


def build_model(
    model: str,
    num_classes: int,
    *,
    min_size: int = 0,
    max_size: int = 0,
    box_score_thresh: float = 0.05,
    box_detections_per_img: int = 100,
    rpn_post_nms_top_n_test: int = 0,
) -> MaskRCNN:
    """An untrained Mask R-CNN of the named architecture (weights are loaded separately).

    ``0`` for a size or proposal count means the architecture's default. No pretrained
    backbone is fetched; ``resnet50_fpn`` uses frozen batch norm, as torchvision's COCO
    model does, so its checkpoint loads.
    """
    if model not in _MODEL_DEFAULTS:
        raise ValueError(f"detector.model: expected one of {', '.join(_MODEL_DEFAULTS)}, got {model!r}")
    d_min, d_max, d_rpn = _MODEL_DEFAULTS[model]
    kwargs: dict[str, Any] = dict(
        min_size=min_size or d_min,
        max_size=max_size or d_max,
        box_score_thresh=box_score_thresh,
        box_detections_per_img=box_detections_per_img,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test or d_rpn,
    )
    if model == "small":
        return _small_model(num_classes, **kwargs)
    if model == "resnet50_fpn":
        body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        backbone: BackboneWithFPN = _resnet_fpn_extractor(body, 3)
        return MaskRCNN(backbone, num_classes=num_classes, **kwargs)
    return torchvision.models.detection.maskrcnn_resnet50_fpn_v2(
        weights=None, weights_backbone=None, num_classes=num_classes, **kwargs
    )


# ---------------------------------------------------------------------------- weights
def _coco_weights_enum(model: str) -> Any:
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

    if model == "resnet50_fpn":
        return MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    if model == "resnet50_fpn_v2":
        return MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1
    raise ValueError(f"detector.weights: coco: there are no COCO weights for model {model!r}; use resnet50_fpn or resnet50_fpn_v2")


def coco_weights_file(model: str) -> Path:
    """Where torchvision's cache keeps the COCO checkpoint of ``model``."""
    url = _coco_weights_enum(model).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _download(url: str, path: Path) -> str | None:
    """Download ``url`` to ``path`` (creating its folder); ``None``, or what went wrong."""
    try:
        # torch writes <path>.<uuid>.partial beside the target: the folder must exist first
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"that folder cannot be created ({exc.strerror or exc}; TORCH_HOME chooses another)"
    log.info("downloading %s to %s", url, path.parent)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except urllib.error.URLError as exc:  # no network, DNS, HTTP error (an OSError: checked first)
        return f"the download failed ({exc.reason})"
    except OSError as exc:
        if exc.filename is not None:  # writing the file: disk full, no permission
            return f"the file cannot be written there ({exc.strerror or exc})"
        return f"the download failed ({type(exc).__name__}: {exc})"  # connection reset, timeout
    except Exception as exc:  # noqa: BLE001 - anything else torch.hub raises is a failed download too
        return f"the download failed ({type(exc).__name__}: {exc})"
    return None


def _load_coco(model: str, allow_download: bool) -> dict[str, torch.Tensor]:
    url = _coco_weights_enum(model).url
    path = coco_weights_file(model)
    if not path.is_file():
        reason = _download(url, path) if allow_download else "downloads are disabled (detector.allow_download: false)"
        if not path.is_file():
            raise FileNotFoundError(
                f"detector.weights=coco: the COCO weights of {model} ({path.name}) are not in {path.parent} and "
                f"{reason}; download {url} by hand and put it there"
            )
    return load_checkpoint_file(path, "detector.weights")


def resolve_weights_path(weights: str, key: str = "detector.weights") -> Path:
    """A checkpoint path as given, else relative to the repository; error if neither exists.

    ``key`` is the config key that names the file, for the error message.
    """
    path = find_weights_file(weights)
    if path is None:
        where = Path(weights).expanduser()
        folders = [str(where.parent)] if where.is_absolute() else list(dict.fromkeys(map(str, (Path.cwd(), REPO_ROOT))))
        raise FileNotFoundError(f"{key}: checkpoint {weights!r} not found (looked in {' and '.join(folders)})")
    return path


def read_checkpoint(path: str | Path, key: str = "detector.weights") -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (or a bare state dict, as ``{"state_dict": ...}``).

    ``key`` is the config key that names the file, for error messages.
    """
    path = Path(path)
    data = load_checkpoint_file(path, key)
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        return data
    if isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"state_dict": data}
    raise ValueError(f"{path}: not an mct detector checkpoint (no 'format': {CHECKPOINT_FORMAT!r}) nor a state dict; "
                     f"set {key} to one")


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, num_classes: int, min_size: int, max_size: int,
                    meta: dict[str, Any] | None = None, fp16: bool = True) -> Path:
    """Write a detector checkpoint atomically; floats stored as fp16 when ``fp16``."""
    path = Path(path)
    state = {
        k: (v.detach().half() if fp16 and v.is_floating_point() else v.detach()).cpu().clone()
        for k, v in model.state_dict().items()
    }
    data = {
        "format": CHECKPOINT_FORMAT,
        "model": arch,
        "num_classes": int(num_classes),
        "min_size": int(min_size),
        "max_size": int(max_size),
        "state_dict": state,
        "meta": meta or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)
    return path


def load_weights(model: MaskRCNN, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` (any float dtype) into ``model``; a mismatch names ``source``."""
    own = model.state_dict()
    state = {k: (v.to(own[k].dtype) if k in own and v.is_floating_point() else v) for k, v in state_dict.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not fit the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )


# ---------------------------------------------------------------------------- the detector
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("detector.device: cuda asked for but torch sees no CUDA device")
    return torch.device(name)


def _label_lut(cfg: DetectorConfig, num_classes: int) -> np.ndarray:
    """Model label -> project class id (-1: dropped)."""
    label_map = dict(cfg.label_map) or dict(COCO_VEHICLES)
    lut = np.full(max(num_classes, max(label_map) + 1), -1, np.int64)
    for label, project in label_map.items():
        if label < 0:
            raise ValueError(f"detector.label_map: model labels are >= 0, got {label}")
        lut[label] = project
    return lut


class MaskRCNNDetector:
    """Mask R-CNN + Soft-NMS + the project filters, one camera.

    ``detect(frame_numbers, frames)`` runs batches of ``cfg.batch_size`` frames (BGR uint8
    ``(H, W, 3)``) and returns one :class:`Detections` per frame: ``xyxy`` in pixels of
    the original frame, ``scores`` after Soft-NMS, ``class_ids`` project classes, and
    ``masks`` ``(N, 28, 28)`` box-relative probabilities (or ``(N, H, W)`` full-frame with
    ``masks: full``, or ``None`` with ``masks: none``).
    """

    needs_frames = True

    def __init__(self, cfg: DetectorConfig, camera: Camera | None = None) -> None:
        self.cfg = cfg
        self.camera = camera
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = _device(cfg.device)
        arch, num_classes, state, source = cfg.model, 91, None, cfg.weights
        min_size, max_size = cfg.min_size, cfg.max_size
        if cfg.weights == "coco":
            state = _load_coco(cfg.model, cfg.allow_download)
            source = str(coco_weights_file(cfg.model))
        elif cfg.weights != "none":
            path = resolve_weights_path(cfg.weights)
            source = str(path)
            ckpt = read_checkpoint(path)
            state = ckpt["state_dict"]
            if "model" in ckpt:
                if ckpt["model"] != cfg.model:
                    log.info("%s: checkpoint is a %r model; detector.model %r ignored", path, ckpt["model"], cfg.model)
                arch = ckpt["model"]
                num_classes = int(ckpt["num_classes"])
                min_size = min_size or int(ckpt.get("min_size", 0))
                max_size = max_size or int(ckpt.get("max_size", 0))
            elif "roi_heads.box_predictor.cls_score.weight" in state:
                num_classes = int(state["roi_heads.box_predictor.cls_score.weight"].shape[0])
        elif cfg.model == "small":
            num_classes = 9  # COCO ids up to truck (8), as the demo model is trained
        self.model = build_model(
            arch,
            num_classes,
            min_size=min_size,
            max_size=max_size,
            box_score_thresh=cfg.model_score_thresh,
            box_detections_per_img=cfg.max_detections_per_img,
            rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        )
        if state is not None:
            load_weights(self.model, state, source)
        use_soft_nms(self.model, cfg.soft_nms)
        self.model.eval().to(self.device)
        self._label_lut = _label_lut(cfg, num_classes)
        log.info("Mask R-CNN %s (%s) on %s, Soft-NMS %s", arch, source, self.device, cfg.soft_nms.method)

    @classmethod
    def from_model(cls, model: MaskRCNN, num_classes: int, cfg: DetectorConfig, camera: Camera | None = None) -> "MaskRCNNDetector":
        """Wrap an existing model (e.g. one being trained) with ``cfg``'s Soft-NMS, cuts and filters.

        The model's RoI heads get ``cfg``'s score threshold and top-k; put the model in
        eval mode before calling :meth:`detect`.
        """
        self = cls.__new__(cls)
        self.cfg = cfg
        self.camera = camera
        self.model = use_soft_nms(model, cfg.soft_nms)
        model.roi_heads.score_thresh = cfg.model_score_thresh
        model.roi_heads.detections_per_img = cfg.max_detections_per_img
        self.device = next(model.parameters()).device
        self._label_lut = _label_lut(cfg, num_classes)
        return self

    @torch.inference_mode()
    def forward(self, frames: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """Raw model output per frame: ``boxes`` (original pixels), ``scores``, ``labels``,
        ``masks`` ``(N, 1, M, M)`` at RoI resolution (before any filter)."""
        images = []
        for bgr in frames:
            if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
                raise ValueError(f"expected a BGR uint8 (H, W, 3) frame, got {bgr.dtype} {bgr.shape}")
            rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).to(self.device)
            images.append(rgb.permute(2, 0, 1).float().div_(255.0))
        model = self.model
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        amp = self.cfg.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=amp):
            batch, _ = model.transform(images)
            features = model.backbone(batch.tensors)
            proposals, _ = model.rpn(batch, features)
            outputs = self._roi_heads(features, proposals, batch.image_sizes)
        for out, resized, original in zip(outputs, batch.image_sizes, original_sizes):
            out["boxes"] = resize_boxes(out["boxes"].float(), resized, original)
        return outputs

    def _roi_heads(
        self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[dict[str, torch.Tensor]]:
        """``RoIHeads.forward`` at inference, except that the mask branch runs only on the
        boxes that can pass the score and class filters (the mask head is the costly part
        when the top-k keeps many low-scoring boxes)."""
        from torchvision.models.detection.roi_heads import maskrcnn_inference

        heads = self.model.roi_heads
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, image_sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        # boxes decoded in float32: under autocast the predictor's outputs are fp16 (bf16),
        # whose spacing is 0.5-1 px (2-4 px) at 1,000 px, and the decoded boxes would keep it
        boxes, scores, labels = heads.postprocess_detections(
            class_logits.float(), box_regression.float(), [p.float() for p in proposals], image_sizes
        )
        lut = torch.from_numpy(self._label_lut).to(self.device)
        outputs = []
        for b, s, lab in zip(boxes, scores, labels):
            known = lab < len(lut)
            wanted = known & (lut[lab.clamp(max=len(lut) - 1)] >= 0) & (s >= self.cfg.min_score)
            outputs.append({"boxes": b[wanted], "scores": s[wanted], "labels": lab[wanted]})
        if self.cfg.masks != "none" and heads.has_mask():
            mask_boxes = [o["boxes"] for o in outputs]
            if sum(len(b) for b in mask_boxes):
                mask_features = heads.mask_head(heads.mask_roi_pool(features, mask_boxes, image_sizes))
                mask_logits = heads.mask_predictor(mask_features)
                probs = maskrcnn_inference(mask_logits, [o["labels"] for o in outputs])
            else:
                probs = [b.new_zeros((0, 1, 28, 28)) for b in mask_boxes]
            for o, p in zip(outputs, probs):
                o["masks"] = p
        return outputs

    def detect(self, frame_numbers: Sequence[int], frames: Sequence[np.ndarray] | None) -> list[Detections]:
        """Detections of each frame, filtered by class, score, area and ROI."""
        if frames is None:
            raise ValueError("the maskrcnn detector needs frames (needs_frames is True)")
        if len(frame_numbers) != len(frames):
            raise ValueError(f"{len(frame_numbers)} frame numbers for {len(frames)} frames")
        results: list[Detections] = []
        bs = self.cfg.batch_size
        for start in range(0, len(frames), bs):
            chunk = frames[start : start + bs]
            outputs = self.forward(chunk)
            for number, bgr, out in zip(frame_numbers[start : start + bs], chunk, outputs):
                results.append(self._to_detections(int(number), bgr.shape[:2], out))
        return results

    def _to_detections(self, frame: int, hw: tuple[int, int], out: dict[str, torch.Tensor]) -> Detections:
        labels = out["labels"].cpu().numpy()
        known = labels < len(self._label_lut)
        project = np.full(len(labels), -1, np.int64)
        project[known] = self._label_lut[labels[known]]
        keep = project >= 0
        masks = None
        if self.cfg.masks != "none" and "masks" in out:
            m = out["masks"][torch.from_numpy(keep).to(out["masks"].device)]
            if self.cfg.masks == "full":
                from torchvision.models.detection.roi_heads import paste_masks_in_image

                boxes_t = out["boxes"][torch.from_numpy(keep).to(out["boxes"].device)]
                m = paste_masks_in_image(m.float(), boxes_t, hw)
            masks = m[:, 0].float().cpu().numpy()
        dets = Detections(
            frame,
            out["boxes"].cpu().numpy()[keep],
            out["scores"].float().cpu().numpy()[keep],
            project[keep],
            masks,
        )
        return apply_filters(dets, self.cfg, self.camera)
