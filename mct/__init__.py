"""mct: multi-camera vehicle tracking (detect, embed, track, associate, evaluate)."""

__version__ = "0.1.0"
