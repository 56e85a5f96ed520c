"""The only place YAML is read: typed, validated, overridable configs.

Each stage package owns a small pydantic model with its defaults (``mct/track/config.py``
holds ``TrackerConfig``, and so on); this module composes them into :class:`Config` and
turns YAML files into validated objects:

* ``extends: base.yaml`` (a path relative to the file, or a list of them) makes a config a
  small diff on a base; mappings merge key by key, anything else replaces.
* ``--set tracker.max_age=50`` style overrides are applied after the files; the value is
  parsed as YAML, so ``true``, ``0.5`` and ``[1, 2]`` have their YAML types.
* An unknown key, a wrong type or an out-of-range value raises :class:`ConfigError`
  naming the file and the dotted key, e.g.
  ``configs/demo.yaml: tracker.max_agee: unknown key (did you mean max_age?)``.

Pydantic does the type and range checks (a maintained library instead of a hand-written
validator); this module only adds file names, dotted keys and suggestions to its errors.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError

from mct.associate.config import AssociationConfig, TopologyFile
from mct.data.config import DatasetConfig
from mct.detect.config import DetectorConfig
from mct.evaluate.config import EvaluationConfig
from mct.reid.config import EmbedderConfig
from mct.schema import StrictModel
from mct.track.config import TrackerConfig, TrackletConfig

__all__ = [
    "ConfigError",
    "StrictModel",
    "Config",
    "load_config",
    "load_yaml_tree",
    "apply_overrides",
    "set_dotted",
    "validate",
    "dump_config",
    "load_topology",
]

M = TypeVar("M", bound=BaseModel)

#: The folder of the shipped configs; ``extends`` may also name a file relative to it.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


# ---------------------------------------------------------------------------- run settings
# Defined here, not in mct.run: the run package reads the whole Config, so the config must
# not import the run package (no cycle between them).
class RayConfig(StrictModel):
    #: ``None``: start a local Ray instance; ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
    address: str | None = None
    #: GPUs each camera job asks Ray for (a Ray resource; fractions share a GPU).
    num_gpus_per_camera: float = Field(default=0.0, ge=0.0)
    num_cpus_per_camera: float = Field(default=1.0, gt=0.0)


class RunConfig(StrictModel):
    """Scheduling and run-folder options; none of them changes a result, so none is fingerprinted."""

    output_dir: str = "runs"
    executor: Literal["local", "ray"] = "local"
    #: camera jobs running at the same time (local processes; also ``num_cpus`` of a local Ray).
    workers: int = Field(default=2, ge=1)
    ray: RayConfig = Field(default_factory=RayConfig)
    #: frames decoded and processed together; bounds the memory a camera job holds.
    batch_frames: int = Field(default=8, ge=1)
    #: detections and embeddings are saved every this many frames (rounded up to whole
    #: batches), so a killed camera job resumes from its last saved chunk, not from frame 1.
    chunk_frames: int = Field(default=256, ge=1)
    #: torch/OpenCV threads inside one camera job (jobs run in parallel already).
    threads_per_job: int = Field(default=1, ge=1)
    #: how local worker processes start; ``spawn`` is safe with torch and threads.
    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and dotted key."""


class SweepConfig(StrictModel):
    """A grid of variants: each dotted key takes each of its values (cartesian product)."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    #: named variants: name -> {dotted key: value}; run in addition to the grid.
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: also run the config unchanged, as variant ``base`` (see mct/run/sweep.py).
    include_base: bool = True


class Config(StrictModel):
    """The whole pipeline configuration, as read by ``mct run``."""

    name: str = "run"
    seed: int = 0
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    reid: EmbedderConfig = Field(default_factory=EmbedderConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    tracklets: TrackletConfig = Field(default_factory=TrackletConfig)
    association: AssociationConfig = Field(default_factory=AssociationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    sweep: SweepConfig | None = None


# ---------------------------------------------------------------------------- YAML
def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], diff: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in diff.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_base(name: str, relative_to: Path) -> Path:
    candidate = (relative_to.parent / name).resolve()
    if candidate.is_file():
        return candidate
    shipped = CONFIG_DIR / name
    if shipped.is_file():
        return shipped
    raise ConfigError(f"{relative_to}: extends: base config {name!r} not found next to it or in {CONFIG_DIR}")


def load_yaml_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and the files it ``extends`` into one merged mapping (no validation)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: extends cycle: {chain}")
    data = _read_yaml(path)
    bases = data.pop("extends", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: extends: expected a file name or a list of them, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = _merge(merged, load_yaml_tree(_resolve_base(base, path), (*_seen, path)))
    return _merge(merged, data)


def apply_overrides(tree: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides; values are parsed as YAML scalars/lists."""
    out = copy.deepcopy(tree)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. tracker.max_age=50")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML: {exc}") from exc
        set_dotted(out, key, value, where=f"--set {key}")
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set ``tree[a][b][c] = value`` for ``key = "a.b.c"``, creating missing sections.

    ``where`` starts the error message (e.g. ``"--set tracker.max_age"``) when a part of the
    path is a value, not a section.
    """
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


# ---------------------------------------------------------------------------- validation
def _field_names(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names of the sub-model reached by ``loc``, for did-you-mean suggestions."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of ``model`` and its sub-models (``name``, ``run.workers``, ...)."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        ann = field.annotation
        sub = next((c for c in (ann, *getattr(ann, "__args__", ())) if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is not None:
            keys.extend(_dotted_keys(sub, f"{prefix}{name}."))
    return keys


def _format_error(source: str, model: type[BaseModel], error: Mapping[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc) or "<top>"
    if error["type"] == "extra_forbidden":
        names = _field_names(model, loc[:-1])
        close = difflib.get_close_matches(loc[-1], names, n=1)
        # a key put in the wrong section (run.name for the top-level name): point to where it lives
        elsewhere = [k for k in _dotted_keys(model) if k.rsplit(".", 1)[-1] == loc[-1] and k != key]
        if close:
            hint = f" (did you mean {close[0]}?)"
        elif elsewhere:
            hint = f" (did you mean {min(elsewhere, key=lambda k: (k.count('.'), k))}?)"
        else:
            hint = f" (known keys: {', '.join(names)})" if names else ""
        return f"{source}: {key}: unknown key{hint}"
    value = error.get("input")
    msg = error["msg"]
    return f"{source}: {key}: {msg}, got {value!r}"


def validate(tree: Mapping[str, Any], model: type[M] = Config, source: str = "<config>") -> M:  # type: ignore[assignment]
    """Validate a mapping into ``model``; errors name ``source`` and the dotted key."""
    try:
        return model.model_validate(dict(tree))
    except ValidationError as exc:
        lines = [_format_error(source, model, err) for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    model: type[M] = Config,  # type: ignore[assignment]
) -> M:
    """Read, merge, override and validate a config file into ``model`` (defaults when no path)."""
    tree = load_yaml_tree(path) if path is not None else {}
    tree = apply_overrides(tree, overrides)
    source = str(path) if path is not None else "<defaults>"
    if overrides:
        source += " (with --set " + " ".join(overrides) + ")"
    return validate(tree, model, source)


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML (for the run folder); loads back to an equal object."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def load_topology(path: str | Path) -> TopologyFile:
    """Read a topology file (``association.topology``), or every ``*.yaml`` file of a folder
    (one per scenario, say), into one :class:`TopologyFile`.

    Raises :class:`ConfigError` naming the file and key on a bad file, ``FileNotFoundError``
    naming the path, and ``ValueError`` when two files define the same scenario.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.yaml"))
        if not files:
            raise FileNotFoundError(f"{path}: topology folder holds no *.yaml file")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: topology file not found (association.topology)")
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    score, score_origin = None, None
    for f in files:
        topo = load_config(f, model=TopologyFile)
        for name, scen in topo.scenarios.items():
            if name in merged:
                raise ValueError(f"{f}: scenarios.{name}: already defined in {origin[name]}")
            merged[name] = scen
            origin[name] = f
        if topo.score is not None:
            if score is not None:
                raise ValueError(f"{f}: score: already defined in {score_origin}")
            score, score_origin = topo.score, f
    return TopologyFile(scenarios=merged, score=score)
