"""The ``mct`` command line: thin; parses arguments, configures logging, calls the library.

This is the only module that prints or formats for a terminal. Heavy modules (torch,
faiss, ray) are imported inside the subcommands, so ``mct --help`` is fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from mct import __version__

log = logging.getLogger("mct")
# emoji off: text such as "gt.txt:100:" (file:line:) must never turn into a picture
console = Console(stderr=False, emoji=False)
err_console = Console(stderr=True, emoji=False)


def setup_logging(verbose: int, quiet: bool, log_file: str | None) -> None:
    """Configure logging once, for the whole process: rich on stderr, plain text in a file."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    handlers: list[logging.Handler] = [
        RichHandler(console=err_console, show_path=verbose > 0, rich_tracebacks=verbose > 0, markup=False)
    ]
    if log_file:
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.DEBUG)
        handlers.append(fh)
    logging.basicConfig(level=logging.DEBUG if log_file else level, handlers=handlers, format="%(message)s", force=True)
    handlers[0].setLevel(level)
    for noisy in ("matplotlib", "PIL", "numba", "ray", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if quiet:
        # tqdm reads TQDM_* variables as defaults: progress bars off, logs only.
        os.environ["TQDM_DISABLE"] = "1"


def fail(message: str, code: int = 2) -> "click.exceptions.Exit":
    """Print an error the user can act on and exit with ``code``."""
    # the message is plain text (paths, file contents): escaped so that "[...]" in it prints as is
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    raise click.exceptions.Exit(code)


class MctGroup(click.Group):
    """Turns the library's expected errors into one clean line instead of a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        from mct.config import ConfigError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            fail(str(exc))
        except (FileNotFoundError, ValueError) as exc:
            if ctx.meta.get("mct.verbose"):
                raise
            fail(str(exc))


@click.group(cls=MctGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mct")
@click.option("-v", "--verbose", count=True, help="More log output (debug level, tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only; no progress bars.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None, help="Also write a full debug log here.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, log_file: str | None) -> None:
    """mct: multi-camera vehicle tracking on AI City (CityFlowV2) style data."""
    setup_logging(verbose, quiet, log_file)
    ctx.meta["mct.verbose"] = verbose > 0
    ctx.meta["mct.quiet"] = quiet


def set_option(example: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The repeatable ``--set KEY=VALUE`` option; ``example`` is a real key of the command's
    config (tests/unit/test_cli.py checks every help example against the config model)."""
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", help=f"Override a config value, e.g. --set {example}."
    )


SET_OPTION = set_option("tracker.max_age=50")


# ---------------------------------------------------------------------------- config
@main.command("config")
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@SET_OPTION
def config_cmd(config: str | None, overrides: tuple[str, ...]) -> None:
    """Validate a config and print it fully resolved (defaults, extends, --set)."""
    from mct.config import dump_config, load_config

    cfg = load_config(config, overrides)
    console.print(dump_config(cfg), end="", highlight=False, markup=False)


# ---------------------------------------------------------------------------- stubs
# Each stage replaces its stub below when it is built.
@main.command("synth")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder (AI City layout).")
@set_option("traffic.spawn_rate_per_s=0.5")
@click.option("--splits", default="", metavar="NAMES", help="Comma-separated splits to generate (default: all in the config).")
@click.option("--workers", default=min(2, os.cpu_count() or 1), show_default=True, help="Cameras rendered at once (processes).")
def synth_cmd(config: str, out: str, overrides: tuple[str, ...], splits: str, workers: int) -> None:
    """Generate a synthetic multi-camera scenario in the AI City layout."""
    from mct.config import load_config
    from mct.data.synth.config import SynthConfig
    from mct.data.synth.writer import generate

    cfg = load_config(config, overrides, model=SynthConfig)
    names = [s.strip() for s in splits.split(",") if s.strip()]
    quiet = click.get_current_context().meta.get("mct.quiet", False)
    for s in generate(cfg, out, names or None, progress=not quiet, workers=workers):
        console.print(
            f"{s.split}/{s.scenario}: {s.cameras} cameras, {s.frames} frames, {s.vehicles_in_gt} vehicles "
            f"in gt ({s.boxes_in_gt} boxes, {100 * s.lookalike_fraction:.0f}% look-alikes, "
            f"{100 * s.occluded_fraction:.0f}% boxes >=30% occluded) in {s.seconds:.1f} s",
            highlight=False,
            markup=False,
        )
    console.print(f"wrote {out}", highlight=False, markup=False)


@main.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@SET_OPTION
@click.option("--force", is_flag=True, help="Redo every stage, ignoring finished work in the run folder.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder (default: <run.output_dir>/<name>).")
@click.pass_context
def run_cmd(ctx: click.Context, config: str, overrides: tuple[str, ...], force: bool, out: str | None) -> None:
    """Run the pipeline (detect, embed, track, associate, evaluate) on many cameras.

    Finished stages are kept in the run folder and skipped when the command is run again;
    a config change redoes exactly the stages it affects. Exit status 1 when any camera
    or stage failed, 130 when interrupted.
    """
    from mct.config import load_config
    from mct.run.runner import run_pipeline

    import signal

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    cfg = load_config(config, overrides)
    # `kill PID` stops the run like Ctrl-C: workers stopped, temporary files removed
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started as a background job
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = run_pipeline(cfg, out, force=force, progress=not ctx.meta.get("mct.quiet", False), argv=sys.argv)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished stages are kept; run the same command again to resume.", highlight=False)
        raise click.exceptions.Exit(130)
    if hasattr(summary, "variants"):
        _print_sweep(summary)
    else:
        figure = summary.evaluation.get("figure")
        _print_run(summary, Path(figure) if figure else None)
    if not summary.ok:
        raise click.exceptions.Exit(1)


def _fmt_stage(entry: dict | None) -> str:
    if not entry:
        return "-"
    if entry.get("status") in ("skipped", "cached"):
        return "off" if entry["status"] == "skipped" else "cached"
    fps = entry.get("fps")
    return f"{entry.get('seconds', 0):.1f}s" + (f" {fps:.0f}/s" if fps else "")


def _print_run(summary, figure: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"run {summary.name}", title_justify="left")
    for col in ("camera", "status", "frames", "tracks", "detect", "embed", "track"):
        table.add_column(col, no_wrap=True)
    for cam in summary.cameras:
        cells = (cam.key, cam.status, str(cam.frames), str(cam.num_tracklets), _fmt_stage(cam.stages.get("detect")),
                 _fmt_stage(cam.stages.get("embed")), _fmt_stage(cam.stages.get("track")))
        table.add_row(*(escape(c) for c in cells))
    console.print(table)
    for cam in summary.failed_cameras:
        console.print(f"FAILED {cam.key}: {cam.error}", highlight=False, markup=False)
    assoc = summary.association
    line = f"association: {assoc.get('status')}"
    if assoc.get("status") in ("computed", "cached"):
        line += f", {assoc.get('tracklets')} tracklets -> {assoc.get('global_ids')} global ids, submission {assoc.get('submission')}"
    elif assoc.get("error") or assoc.get("reason"):
        line += f" ({assoc.get('error') or assoc.get('reason')})"
    console.print(line, highlight=False, markup=False)
    ev = summary.evaluation
    if ev.get("status") in ("computed", "cached"):
        shown = {k: v for k, v in ev.get("metrics", {}).items() if isinstance(v, (int, float)) and k.lower() in
                 ("idf1", "idp", "idr", "mota", "motp", "num_switches")}
        console.print("evaluation: " + ", ".join(f"{k.upper()} {100 * v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in shown.items())
                      + (f"; per-camera figure {figure}" if figure is not None else ""), highlight=False, markup=False)
    else:
        console.print(f"evaluation: {ev.get('status')} ({ev.get('error') or ev.get('reason', '')})", highlight=False, markup=False)
    console.print(f"{summary.status}: {len(summary.failed_cameras)} of {len(summary.cameras)} camera(s) failed, "
                  f"{summary.seconds:.1f} s; run folder {summary.run_dir}", highlight=False, markup=False)


def _print_sweep(summary) -> None:  # type: ignore[no-untyped-def]
    """The comparison as a terminal table (comparison.md keeps the markdown form)."""
    import yaml
    from rich import box
    from rich.table import Table

    from mct.run.sweep import comparison_rows

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    def value(v: object) -> str:
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()

    table = Table(title=f"sweep {summary.name}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    # long variant names and overrides fold inside their cells; the numbers never wrap
    table.add_column("variant", overflow="fold", min_width=8)
    table.add_column("overrides", overflow="fold", min_width=12)
    for col in ("IDF1", "IDP", "IDR", "s", "new/cached"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for r in comparison_rows(summary):
        overrides = "\n".join(f"{k}={value(v)}" for k, v in r["overrides"].items()) or "(base)"
        cells = (r["variant"], overrides, pct(r["idf1"]), pct(r["idp"]), pct(r["idr"]), f"{r['seconds']:.1f}",
                 f"{r['camera_stages_computed']}/{r['camera_stages_cached']}", r["status"])
        table.add_row(*(escape(c) for c in cells))
    console.print(table)
    console.print(f"{summary.status}: {len(summary.variants)} variant(s) in {summary.seconds:.1f} s; "
                  f"comparison in {summary.run_dir}/comparison.md", highlight=False, markup=False)


def _rows_table(title: str, rows: list[dict[str, str]]) -> "object":
    """A rich table from rows of ``column -> text`` (first column left-aligned)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for k, col in enumerate(rows[0] if rows else {}):
        table.add_column(col, justify="left" if k == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(v) for v in row.values()))
    return table


@main.command("eval")
@click.option("--gt", "gt_path", type=click.Path(dir_okay=False, exists=True), required=True,
              help="Evaluation ground truth (ground_truth_<split>.txt, or a .zip/.tar.gz with one file).")
@click.option("--pred", "pred_path", type=click.Path(dir_okay=False, exists=True), required=True,
              help="Submission: 'camera_id obj_id frame_id xmin ymin width height xworld yworld' per line.")
@click.option("--roi-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder with c0xx/roi.jpg (or a dataset / split folder holding them); without it no ROI filter.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write eval.json and eval.png (per-camera bars, identity timeline) here.")
@click.option("--per-camera-gt-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Also evaluate each camera MOTChallenge-style against its c0xx/gt/gt.txt found below this folder.")
@click.option("--min-iou", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="IoU a match needs (0.5 in the official evaluation).")
@click.option("--per-camera/--no-per-camera", default=True, show_default=True, help="Print the per-camera table.")
def eval_cmd(gt_path: str, pred_path: str, roi_dir: str | None, out_dir: str | None, per_camera_gt_dir: str | None,
             min_iou: float, per_camera: bool) -> None:
    """Score a submission against ground truth exactly as the AI City evaluation does."""
    import numpy as np

    from mct.data.submission import read_submission
    from mct.evaluate.mot import evaluate_submission_per_camera
    from mct.evaluate.mtmc import evaluate_mtmc_rows, load_rois
    from mct.evaluate.report import camera_rows, mot_rows, summary_rows, write_report

    gt = read_submission(gt_path, duplicates="error")
    pred = read_submission(pred_path, duplicates="keep")
    rois = load_rois(roi_dir, np.unique(pred.camera).tolist()) if roi_dir else None
    result = evaluate_mtmc_rows(gt, pred, rois, min_iou=min_iou, gt_path=gt_path, pred_path=pred_path)
    single = evaluate_submission_per_camera(pred, per_camera_gt_dir, rois, min_iou) if per_camera_gt_dir else None
    if per_camera:
        console.print(_rows_table("per camera (share of the global evaluation)", camera_rows(result)))
    if single:
        console.print(_rows_table("single-camera MOT evaluation (gt/gt.txt, column 7 = 0 ignored)", mot_rows(single)))
    console.print(_rows_table("AI City MTMC evaluation", summary_rows(result)))
    f = result
    console.print(
        f"prediction: {f.num_pred_read} rows read, {f.dropped_roi} outside the ROI"
        f"{'' if f.roi_applied else ' (no ROI given)'}, {f.dropped_single_camera_rows} rows of "
        f"{f.dropped_single_camera_ids} single-camera ids, {f.dropped_duplicates} duplicates dropped",
        highlight=False,
    )
    if out_dir:
        paths = write_report(out_dir, result, single)
        console.print(f"wrote {paths['json']} and {paths['png']}", highlight=False, markup=False)


@main.command("train-detector")
@click.argument("config", type=click.Path(dir_okay=False))
@set_option("max_iters=500")
@click.option("--eval-only", is_flag=True, help="Only report box AP of the trained model on the validation split.")
@click.option("--weights", default=None, help="With --eval-only: the checkpoint to evaluate (default: the config's output).")
def train_detector_cmd(config: str, overrides: tuple[str, ...], eval_only: bool, weights: str | None) -> None:
    """Train or fine-tune the Mask R-CNN detector on data in the AI City layout."""
    from mct.config import load_config
    from mct.detect.config import DetectorTrainConfig
    from mct.detect.train import evaluate_checkpoint, train_detector

    cfg = load_config(config, overrides, model=DetectorTrainConfig)
    if eval_only:
        ap = evaluate_checkpoint(cfg, weights)
    else:
        metrics = train_detector(cfg)
        ap = metrics["validation"]
        console.print(f"trained {metrics['steps']} steps in {metrics['train_minutes']:.1f} min; model: {cfg.output}", highlight=False, markup=False)
    console.print(
        f"box AP on {cfg.val_split} ({int(ap['frames'])} frames, {int(ap['gt_boxes'])} boxes): "
        f"AP {ap['AP']:.3f}  AP50 {ap['AP50']:.3f}  AP75 {ap['AP75']:.3f}  AR100 {ap['AR100']:.3f}  "
        f"({ap['seconds_per_frame']:.3f} s/frame)",
        highlight=False,
        markup=False,
    )
    points = sorted(k.split("@")[1] for k in ap if k.startswith("precision@"))
    console.print(
        "precision / recall at IoU 0.5 by min_score: "
        + ", ".join(f"{s}: {ap['precision@' + s]:.3f} / {ap['recall@' + s]:.3f}" for s in points),
        highlight=False,
        markup=False,
    )


@main.command("train-reid")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder (overrides out_dir).")
@click.option("--resume/--no-resume", default=None, help="Continue from OUT/last.pt (default: the config's resume).")
@set_option("epochs=20")
@click.pass_context
def train_reid_cmd(ctx: click.Context, config: str, out: str | None, resume: bool | None, overrides: tuple[str, ...]) -> None:
    """Train the ResNet re-ID model on identities from AI City style ground truth."""
    from mct.config import load_config
    from mct.reid.config import ReidTrainConfig
    from mct.reid.train import train_reid

    extra = [*overrides, *([f"out_dir={out}"] if out else []), *([f"resume={str(resume).lower()}"] if resume is not None else [])]
    cfg = load_config(config, extra, model=ReidTrainConfig)
    summary = train_reid(cfg, progress=not ctx.meta.get("mct.quiet"))
    console.print(f"model: {summary['model']}  ({summary['epochs']} epochs, {summary['steps']} steps)", markup=False)
    if "val" in summary:
        v = summary["val"]
        console.print(
            f"{cfg.val_split}: mAP {v['mAP']:.4f}  rank-1 {v['rank1']:.4f}  rank-5 {v['rank5']:.4f}  "
            f"({v['num_valid_queries']} queries, {v['num_gallery']} gallery crops)"
        )


@main.command("adapt")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--run", "run_dir", type=click.Path(file_okay=False), default=None, help="The first run's folder (overrides run_dir).")
@set_option("steps=100")
@click.pass_context
def adapt_cmd(ctx: click.Context, config: str, run_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Fine-tune the re-ID model on a scenario's own video, without labels (from a first run)."""
    from mct.config import load_config
    from mct.reid.adapt import AdaptError, adapt_reid
    from mct.reid.config import ReidAdaptConfig

    cfg = load_config(config, [*overrides, *([f"run_dir={run_dir}"] if run_dir else [])], model=ReidAdaptConfig)
    try:
        summary = adapt_reid(cfg, progress=not ctx.meta.get("mct.quiet"))
    except AdaptError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"model: {summary['model']}  ({summary['steps']} steps on {summary['tracklets_used']} tracklets, "
        f"{summary['pseudo_identities']} pseudo-identities, {summary['cross_camera_merges']} cross-camera merges; "
        f"{summary['wall_s']:.0f} s)\nre-run with: --set reid.weights={summary['model']}",
        highlight=False,
        markup=False,
    )


@main.command("eval-reid")
@click.option("--data", "root", type=click.Path(file_okay=False), required=True, help="Dataset root (AI City layout).")
@click.option("--split", default="validation", show_default=True, help="Split whose gt identities are evaluated.")
@click.option("--weights", required=True, help="Re-ID checkpoint (e.g. models/reid_demo.pt), or imagenet / none.")
@click.option("--scenario", "scenarios", multiple=True, help="Only these scenarios (repeatable).")
@click.option("--flip/--no-flip", default=False, show_default=True, help="Average features with the flipped crop.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the metrics here.")
def eval_reid_cmd(
    root: str, split: str, weights: str, scenarios: tuple[str, ...], flip: bool, batch_size: int, device: str, json_out: str | None
) -> None:
    """Re-ID mAP and CMC (rank-1, rank-5) on held-out identities, cross-camera protocol."""
    import json

    from mct.reid.train import evaluate_reid

    metrics, crops = evaluate_reid(root, split, weights, scenarios=scenarios, batch_size=batch_size, device=device, flip=flip)
    result = {"data": root, "split": split, "weights": weights, "flip": flip, "identities": crops.num_identities,
              "cameras": crops.num_cameras, **metrics.as_dict()}
    console.print(
        f"{root} {split}: mAP {metrics.mAP:.4f}  rank-1 {metrics.rank1:.4f}  rank-5 {metrics.rank5:.4f}  "
        f"({metrics.num_valid_queries} queries, {metrics.num_gallery} gallery crops, "
        f"{crops.num_identities} identities, {crops.num_cameras} cameras)",
        highlight=False,
        markup=False,
    )
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2))


@main.command("fit-topology")
@click.option("--data", "root", default=None, type=click.Path(file_okay=False, exists=True), help="AI City layout folder.")
@click.option("--from-run", "run_dir", default=None, type=click.Path(file_okay=False, exists=True),
              help="Instead of --data: the camera links of a finished run (geometry prior + its own matches, no labels).")
@click.option("--split", default="train", show_default=True, help="Split whose per-camera gt/gt.txt is read.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Topology YAML to write (required with --data; default RUN/association/links.yaml with --from-run).")
@click.option("--scenario", "scenarios", multiple=True, help="Only these scenarios (repeatable); default all.")
@click.option("--margin-s", default=5.0, show_default=True, help="Widen each window by at least this many seconds per side.")
@click.option("--margin-frac", default=0.1, show_default=True, help="... or by this fraction of its width, if more.")
@click.option("--min-count", default=1, show_default=True, help="Leave out camera pairs seen fewer times.")
@click.option("--split-gap-s", default=10.0, show_default=True, help="A gap this long in one camera starts a new visit.")
@click.option("--as-scenario", default=None, help="Write all scenarios under this name (e.g. '*' to apply to any scenario).")
@click.option("--fragment-windows/--no-fragment-windows", default=True, show_default=True,
              help="Give every camera a self-transition [0, split-gap-s] for fragments of one visit.")
@click.option("--pairs", type=click.Choice(["all", "consecutive"]), default="all", show_default=True,
              help="Which visit pairs of a vehicle are transitions: every later visit, or only the next one.")
@click.option("--labels", is_flag=True,
              help="With --from-run on a split with ground truth: also fit the pair score's term weights and "
                   "appearance calibration on the run's labelled candidate pairs (the file's score section).")
def fit_topology_cmd(
    root: str | None, run_dir: str | None, split: str, out: str | None, scenarios: tuple[str, ...], margin_s: float,
    margin_frac: float, min_count: int, split_gap_s: float, as_scenario: str | None, fragment_windows: bool, pairs: str,
    labels: bool,
) -> None:
    """Estimate camera-pair travel-time windows from ground truth (--data), or write a
    finished run's camera links (--from-run), with --labels also the score's term weights."""
    from mct.associate.topology import fit_topology, write_topology
    from mct.data.aicity import load_dataset

    if (root is None) == (run_dir is None):
        fail("fit-topology: give exactly one of --data and --from-run")
    if run_dir is not None:
        if scenarios or as_scenario is not None:
            fail("fit-topology: --scenario and --as-scenario go with --data (a run's links cover its own scenarios)")
        _links_from_run(Path(run_dir), out, labels)
        return
    if labels:
        fail("fit-topology: --labels goes with --from-run (the weights are fitted on a run's candidate pairs)")
    if out is None:
        fail("fit-topology: --out is required with --data")

    dataset = load_dataset(root, split, scenarios)
    observations = []
    for cam in dataset.cameras:
        gt = dataset.read_gt(cam)
        if gt is None:
            log.warning("%s/%s: no gt/gt.txt, skipped", *cam.key)
            continue
        observations.append((cam, gt.frame, gt.id))
    if not observations:
        fail(f"{root}/{split}: no camera has gt/gt.txt")
    topology = fit_topology(observations, margin_s, margin_frac, min_count, split_gap_s, as_scenario, fragment_windows, pairs)
    write_topology(out, topology)
    n_rules = sum(len(s.transitions) for s in topology.scenarios.values())
    console.print(f"wrote {out}: {len(topology.scenarios)} scenario(s), {n_rules} transitions", highlight=False)


def _links_from_run(run_dir: Path, out: str | None, labels: bool = False) -> None:
    """``fit-topology --from-run``: read the run's config, tracklets and assignment, write its
    links; with ``labels``, re-associate the run's tracklets and fit the score section on its
    candidate pairs labelled by the cameras' ground truth."""
    from mct.associate.config import LinksConfig
    from mct.config import load_topology
    from mct.associate.links import SOURCE_NAMES
    from mct.associate.topology import links_from_assignment, write_topology
    from mct.data.aicity import dataset_from_config
    from mct.run.pipeline import ASSIGNMENT_FILE, load_assignment
    from mct.run.render import load_run_config
    from mct.run.run_folder import load_run_tracklets

    cfg = load_run_config(run_dir)
    assignment_path = run_dir / "association" / ASSIGNMENT_FILE
    if not assignment_path.is_file():
        fail(f"{assignment_path}: the run has no association result")
    dataset = dataset_from_config(cfg.dataset)
    tracklets = load_run_tracklets(run_dir, dataset.cameras)
    if not tracklets:
        fail(f"{run_dir}/cameras: no camera has tracklets.npz")
    links_cfg = getattr(cfg.association, "links", None) or LinksConfig()
    topology_path = getattr(cfg.association, "topology", "")
    topology = load_topology(topology_path) if topology_path else None  # the run's file wins where it has links
    links = links_from_assignment(tracklets, dataset.cameras, load_assignment(assignment_path), links_cfg, topology)
    from rich import box
    from rich.table import Table

    topo_out = links.to_topology()
    if labels:
        topo_out = topo_out.model_copy(update={"score": _score_from_labels(run_dir, cfg, dataset, tracklets, topology)})
    path = write_topology(out or run_dir / "association" / "links.yaml", topo_out)
    counts: dict[str, int] = {}
    table = Table(title="camera links (gap = start in dst - end in src, seconds)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("scenario", "src", "dst", "window", "hard", "overlap", "source", "n"):
        table.add_column(name, justify="left" if name in ("scenario", "src", "dst", "source") else "right", no_wrap=True)
    for scen, ls in sorted(links.links.items()):
        for (src, dst), lk in sorted(ls.items()):
            counts[SOURCE_NAMES[lk.source]] = counts.get(SOURCE_NAMES[lk.source], 0) + 1
            if src == dst:
                continue
            window = "no direct link" if lk.forbidden else f"[{lk.lo_s:.1f}, {lk.hi_s:.1f}]"
            hard = f"{lk.min_gap_s:.1f}" if abs(lk.min_gap_s) != float("inf") else "-"
            table.add_row(scen, src, dst, window, hard, "yes" if lk.overlap else "", SOURCE_NAMES[lk.source], str(lk.count or ""))
    console.print(table)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    console.print(f"wrote {path}: {len(links.links)} scenario(s), links: {summary}", highlight=False)


def _score_from_labels(run_dir: Path, cfg: object, dataset: object, tracklets: list, topology: object) -> object:
    """``fit-topology --from-run RUN --labels``: the score section fitted on the run's labelled pairs."""
    from mct.associate import associate
    from mct.associate.labelled import fit_score, run_truth_ids

    try:
        truth = run_truth_ids(tracklets, dataset)
    except ValueError as exc:
        fail(f"fit-topology --labels: {exc} of {run_dir} "
             "(the weights are fitted on labelled tracks; give a run on a split with ground truth)")
    details: dict = {}
    with console.status("re-associating the run's tracklets for their candidate pairs"):
        associate(tracklets, dataset.cameras, cfg.association, topology, details=details)
    table = details["table"]
    a, b, _ = details["pairs"]
    try:
        score = fit_score(table, details["model"], a, b, truth[table.source],
                          fitted_on=f"{run_dir}: {len(a)} candidate pairs, {len(table)} tracklets")
    except ValueError as exc:
        fail(f"fit-topology --labels: {run_dir}: {exc}")
    w = score.weights
    console.print(f"term weights: appearance {w.appearance:.2f}, travel_time {w.travel_time:.2f}, "
                  f"direction {w.direction:.2f}, colocation {w.colocation:.2f}", highlight=False)
    return score


@main.command("render")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--camera", "camera_id", required=True, help="Camera id, e.g. c001.")
@click.option("--scenario", default=None, help="Scenario, when the camera id is in several (e.g. S02).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder (default: RUN_DIR/render).")
@click.option("--max-frames", type=int, default=None, help="Render only the first N frames.")
def render_cmd(run_dir: str, camera_id: str, scenario: str | None, out: str | None, max_frames: int | None) -> None:
    """Render a camera's video annotated with global ids, and an id-over-time overview."""
    from mct.run.render import render_camera

    result = render_camera(run_dir, camera_id, scenario, out, max_frames)
    if result.video is not None:
        codec = {"h264": "H.264", "mpeg4": "MPEG-4 Part 2, which most browsers do not play"}.get(result.codec or "", result.codec)
        console.print(f"wrote {result.video} ({result.frames} frames, {codec})", highlight=False, markup=False)
    console.print(f"wrote {result.overview}", highlight=False, markup=False)


@main.command("bench")
def bench_cmd() -> None:
    """Run the benchmarks in benchmarks/ and write JSON results plus a markdown table."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
    if not script.is_file():
        fail(f"{script} not found: `mct bench` runs from a source checkout")
    raise SystemExit(subprocess.call([sys.executable, str(script)]))


if __name__ == "__main__":  # pragma: no cover
    main()
