"""The synthetic world: a small city with traffic, watched by pinhole cameras, written in
the AI City layout (``mct synth``). See ``docs/synth.md``.

``SynthConfig`` (``config.py``) -> ``build_network`` / ``simulate`` (``world.py``) ->
``make_cameras`` (``cameras.py``) -> ``make_background`` / ``render_frame`` (``render.py``)
-> ``generate`` (``writer.py``).
"""

from mct.data.synth.config import SynthConfig
from mct.data.synth.writer import generate

__all__ = ["SynthConfig", "generate"]
