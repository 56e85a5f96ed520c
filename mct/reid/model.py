"""The re-ID network: a ResNet backbone, average/GeM pooling, a BatchNorm neck.

The "strong baseline" shape for vehicle re-ID (see docs/reid.md): ImageNet ResNet with
the last stride set to 1, global pooling, a BatchNorm1d "neck" whose output is the
feature (L2-normalised by the embedder), and a bias-free linear classifier on the neck
used only in training (cross-entropy) while the triplet loss sees the pooled feature.

Checkpoints written by this project are plain ``torch.save`` dicts (see
:func:`save_checkpoint`) that record the architecture and the crop size, so a file alone
rebuilds the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock

from mct.checkpoint import load_checkpoint_file
from mct.reid.config import EmbedderConfig

log = logging.getLogger(__name__)

__all__ = [
    "GeM",
    "CompactResNet",
    "ReidNet",
    "build_model",
    "imagenet_weights_path",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
]

#: the ``format`` key of every project checkpoint (so a random .pt is refused clearly).
CHECKPOINT_FORMAT = "mct-reid/1"

_TORCHVISION_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}

#: the config keys that define the network (saved in a checkpoint, restored from it).
ARCH_KEYS = ("arch", "crop_height", "crop_width", "last_stride", "pooling", "gem_p", "compact_widths", "compact_blocks")


class GeM(nn.Module):
    """Generalised-mean pooling: ``(mean(x^p))^(1/p)`` over H, W; (B, C, H, W) -> (B, C)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in float32 whatever the input: in fp16, x**3 overflows from x = 41 (65504 is the
        # largest fp16), and a half-precision embedder would return inf features
        p = self.p.float().clamp(min=1.0)
        pooled = F.adaptive_avg_pool2d(x.float().clamp(min=self.eps).pow(p), 1).pow(1.0 / p).flatten(1)
        return pooled.to(x.dtype)


class CompactResNet(nn.Module):
    """A width-reduced ResNet made of torchvision's ``BasicBlock`` (the CPU demo model).

    Same stem and stage layout as ResNet-18 (7x7/2 conv, 3x3/2 max-pool, four stages with
    strides 1, 2, 2, ``last_stride``), with ``widths`` channels instead of 64..512.
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int] = (32, 64, 128, 256),
        blocks: tuple[int, int, int, int] = (2, 2, 2, 2),
        last_stride: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = widths[0]
        stages = []
        for width, n, stride in zip(widths, blocks, (1, 2, 2, last_stride)):
            layers: list[nn.Module] = []
            for i in range(n):
                s = stride if i == 0 else 1
                down = None
                if s != 1 or in_ch != width:
                    down = nn.Sequential(nn.Conv2d(in_ch, width, 1, stride=s, bias=False), nn.BatchNorm2d(width))
                layers.append(BasicBlock(in_ch, width, stride=s, downsample=down))
                in_ch = width
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = in_ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def imagenet_weights_path(arch: str) -> tuple[Path, str]:
    """Where torchvision keeps the ImageNet file of ``arch``, and its download URL."""
    if arch not in _TORCHVISION_WEIGHTS:
        raise ValueError(f"reid.arch {arch!r}: no ImageNet weights exist (only {', '.join(_TORCHVISION_WEIGHTS)})")
    enum = getattr(models, _TORCHVISION_WEIGHTS[arch])
    url = enum.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1], url


def _torchvision_backbone(arch: str, last_stride: int, imagenet: bool) -> tuple[nn.Module, int]:
    net = getattr(models, arch)(weights=None)
    if imagenet:
        path, url = imagenet_weights_path(arch)
        if not path.is_file():
            raise FileNotFoundError(
                f"reid.weights=imagenet: {path.name} not found in {path.parent} (torch.hub.get_dir() "
                f"is {torch.hub.get_dir()}). Copy the file there (from {url}), or set reid.weights to "
                "a project checkpoint or to none."
            )
        net.load_state_dict(load_checkpoint_file(path, "reid.weights"))
        log.info("loaded ImageNet weights %s", path)
    if last_stride == 1:
        block = net.layer4[0]
        # BasicBlock strides in conv1, Bottleneck in conv2 (torchvision's "ResNet v1.5").
        conv = block.conv2 if hasattr(block, "conv3") else block.conv1
        conv.stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    out_channels = net.fc.in_features
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return body, out_channels


class ReidNet(nn.Module):
    """Backbone -> pooling -> BatchNorm neck (-> classifier in training).

    ``forward(x)`` with ``x (B, 3, H, W)`` float, ImageNet-normalised RGB returns, in eval
    mode, the neck feature ``(B, D)`` (not normalised); in training mode a tuple
    ``(pooled (B, D), logits (B, num_classes) or None)``.
    """

    def __init__(self, cfg: EmbedderConfig, num_classes: int = 0, imagenet: bool = False) -> None:
        super().__init__()
        if cfg.arch == "compact":
            if imagenet:
                raise ValueError("reid.arch 'compact' has no ImageNet weights; use weights: none or a checkpoint")
            self.backbone = CompactResNet(cfg.compact_widths, cfg.compact_blocks, cfg.last_stride)
            self.dim = self.backbone.out_channels
        else:
            self.backbone, self.dim = _torchvision_backbone(cfg.arch, cfg.last_stride, imagenet)
        self.pool: nn.Module = GeM(cfg.gem_p) if cfg.pooling == "gem" else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.neck = nn.BatchNorm1d(self.dim)
        # The neck's shift is frozen at 0 (the strong baseline's "BNNeck"): the feature is
        # then symmetric around the origin, which suits cosine distance.
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(self.dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> Any:
        pooled = self.pool(self.backbone(x))
        feat = self.neck(pooled)
        if not self.training:
            return feat
        logits = self.classifier(feat) if self.classifier is not None else None
        return pooled, logits


def build_model(cfg: EmbedderConfig, num_classes: int = 0) -> ReidNet:
    """A ``ReidNet`` for ``cfg`` initialised by ``cfg.weights`` = ``imagenet`` or ``none``.

    (A checkpoint path is handled by :func:`load_checkpoint`.)
    """
    weights = cfg.weights.strip().lower()
    if weights not in ("imagenet", "none"):
        raise ValueError(f"build_model: weights must be 'imagenet' or 'none' here, got {cfg.weights!r}")
    return ReidNet(cfg, num_classes=num_classes, imagenet=weights == "imagenet")


def save_checkpoint(
    path: str | Path,
    model: ReidNet,
    cfg: EmbedderConfig,
    *,
    fp16: bool = False,
    with_classifier: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a project checkpoint: the network config, the state dict and ``extra``.

    ``fp16=True`` stores floating tensors in half precision (the shipped files);
    ``with_classifier=False`` drops the training-only classifier.
    """
    state = {}
    for key, value in model.state_dict().items():
        if not with_classifier and key.startswith("classifier."):
            continue
        if fp16 and value.is_floating_point():
            value = value.half()
        state[key] = value.detach().cpu().clone()
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: getattr(cfg, k) for k in ARCH_KEYS},
        "num_classes": model.classifier.out_features if (model.classifier is not None and with_classifier) else 0,
        "state_dict": state,
    }
    if extra:
        payload.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash mid-write never leaves a broken checkpoint
    return path


def read_checkpoint(path: str | Path, key: str = "reid.weights") -> dict[str, Any]:
    """Load a project checkpoint dict (on the CPU), checking that it is one.

    ``key`` is the config key that names the file, for error messages. Tensors and plain
    values only (``weights_only``): a checkpoint never runs code when it is read.
    """
    path = Path(path)
    if not path.is_file():
        shown = str(path) if path.is_absolute() else f"{path} (relative to {Path.cwd()})"
        raise FileNotFoundError(f"{key}: re-ID checkpoint {shown} not found; set {key} to a checkpoint file, "
                                "or to imagenet or none")
    payload = load_checkpoint_file(path, key)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: not an mct re-ID checkpoint (expected format {CHECKPOINT_FORMAT!r}, "
            f"got {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}); set {key} to one"
        )
    return payload


def load_checkpoint(
    path: str | Path, cfg: EmbedderConfig | None = None, key: str = "reid.weights"
) -> tuple[ReidNet, EmbedderConfig]:
    """Rebuild the network of a project checkpoint.

    Returns the model (fp32, eval mode, on the CPU) and ``cfg`` with the checkpoint's
    architecture keys (arch, crop size, pooling, ...) in place of its own. ``key`` names the
    file's config key in error messages.
    """
    payload = read_checkpoint(path, key)
    base = cfg if cfg is not None else EmbedderConfig()
    arch = payload["model"]
    changed = {k: v for k, v in arch.items() if getattr(base, k) != (tuple(v) if isinstance(v, list) else v)}
    if changed and cfg is not None:
        log.info("%s: using the checkpoint's %s", path, ", ".join(f"{k}={v}" for k, v in changed.items()))
    merged = base.model_copy(update={**arch, "weights": str(path)})
    merged = EmbedderConfig.model_validate(merged.model_dump())
    model = ReidNet(merged, num_classes=int(payload.get("num_classes", 0)))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise ValueError(f"{path}: state dict does not fit arch {merged.arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    return model, merged
