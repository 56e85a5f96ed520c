from pathlib import Path

from click.testing import CliRunner

from mct.cli import main

REPO = Path(__file__).resolve().parents[2]

SUBCOMMANDS = ("synth", "run", "eval", "train-detector", "train-reid", "eval-reid", "fit-topology", "render", "bench", "config")


def test_help_lists_every_subcommand():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.output, name


def test_mistyped_key_fails_with_file_key_and_suggestion(tmp_path):
    bad = tmp_path / "demo.yaml"
    bad.write_text("tracker:\n  max_agee: 50\n")
    result = CliRunner().invoke(main, ["config", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: tracker.max_agee: unknown key (did you mean max_age?)" in " ".join(result.output.split())


def test_config_prints_the_resolved_config_with_overrides():
    result = CliRunner().invoke(main, ["config", "--set", "tracker.max_age=45"])
    assert result.exit_code == 0
    assert "max_age: 45" in result.output


# ---------------------------------------------------------------------------- text printed as is
# Rich turns ":100:" into an emoji and "[...]" into markup; file:line messages must survive both.


def test_eval_error_keeps_the_line_number_and_brackets(tmp_path):
    folder = tmp_path / "run[1]"
    folder.mkdir()
    (folder / "gt.txt").write_text("1 1 1 100 100 50 40 -1 -1\n")
    # 99 good rows, row 100 has 6 columns
    pred = folder / "pred.txt"
    pred.write_text("".join(f"1 1 {f} 100 100 50 40 -1 -1\n" for f in range(1, 100)) + "1 1 100 100 100 50\n")
    result = CliRunner().invoke(main, ["eval", "--gt", str(folder / "gt.txt"), "--pred", str(pred)])
    assert result.exit_code == 2
    text = "".join(result.output.split())  # the console wraps long lines
    assert "run[1]/pred.txt:100:expected9columns" in text, result.output
    assert "\N{HUNDRED POINTS SYMBOL}" not in result.output


def _invoke_run(monkeypatch, summary, *args):
    """``mct run`` with the pipeline replaced by one that returns ``summary``."""
    import signal

    import mct.run.runner as runner

    monkeypatch.setattr(runner, "run_pipeline", lambda *a, **k: summary)
    before = signal.getsignal(signal.SIGTERM)  # the command installs its own SIGTERM handler
    try:
        return CliRunner().invoke(main, ["-q", "run", str(REPO / "configs" / "demo.yaml"), *args])
    finally:
        signal.signal(signal.SIGTERM, before)


def test_run_table_prints_a_camera_error_as_is(monkeypatch):
    import mct.run.pipeline as pipeline
    from mct.run.camera_job import CameraResult

    error = "ValueError: data/S01/c001/gt/gt.txt:100: expected 10 columns [got 6]"
    summary = pipeline.RunSummary(name="demo", run_dir="runs/demo", status="failed",
                                  cameras=[CameraResult("S01", "c001", status="failed", error=error)],
                                  association={"status": "skipped", "reason": "no cameras"},
                                  evaluation={"status": "skipped", "reason": "no association result"})
    result = _invoke_run(monkeypatch, summary)
    assert result.exit_code == 1
    text = "".join(result.output.split())
    assert "FAILEDS01_c001:" + "".join(error.split()) in text, result.output
    assert "\N{HUNDRED POINTS SYMBOL}" not in result.output


# ---------------------------------------------------------------------------- run outputs
def _evaluated_run(run_dir):
    """A finished run's summary whose eval/metrics.json holds a two-camera evaluation."""
    import json

    import mct.run.pipeline as pipeline

    cams = [{"camera_id": f"c00{k}", "idf1": v, "idp": v, "idr": v} for k, v in ((1, 0.9), (2, 0.6))]
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "eval" / "metrics.json").write_text(json.dumps({"metrics": {"idf1": 0.75, "idp": 0.8, "idr": 0.7},
                                                               "cameras": cams}))
    # the eval stage draws eval.png and names it in the summary (tests/e2e/test_run_tiny.py)
    png = pipeline._eval_figure(run_dir / "eval")
    return pipeline.RunSummary(name="demo", run_dir=str(run_dir), status="ok", association={"status": "cached"},
                               evaluation={"status": "computed", "metrics": {"idf1": 0.75, "idp": 0.8, "idr": 0.7},
                                           "figure": str(png)})


def test_run_names_the_per_camera_figure_the_readme_promises(monkeypatch, tmp_path):
    result = _invoke_run(monkeypatch, _evaluated_run(tmp_path / "runs" / "demo"))
    assert result.exit_code == 0, result.output
    png = tmp_path / "runs" / "demo" / "eval" / "eval.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    assert f"per-camera figure {png}" in "".join(result.output.split("\n")), result.output


def test_sweep_comparison_prints_as_a_table_not_markdown(monkeypatch, tmp_path):
    from mct.run.sweep import SweepSummary, Variant

    base, wide = _evaluated_run(tmp_path / "variants" / "base"), _evaluated_run(tmp_path / "variants" / "wide")
    wide.evaluation["metrics"] = {"idf1": 0.8123, "idp": 0.9, "idr": 0.7}
    summary = SweepSummary(name="sweep", run_dir=str(tmp_path), seconds=3.0,
                           variants=[(Variant("base", {}, None), base),
                                     (Variant("wide", {"tracker.max_age": 50}, None), wide)])
    result = _invoke_run(monkeypatch, summary)
    assert result.exit_code == 0, result.output
    assert "|---" not in result.output and "`" not in result.output  # no markdown on the terminal
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.split()[:1] in (["base"], ["wide"])}
    # variant | overrides | IDF1 | IDP | IDR | ...
    assert rows["base"][1:5] == ["(base)", "75.00", "80.00", "70.00"], result.output
    assert rows["wide"][1:5] == ["tracker.max_age=50", "81.23", "90.00", "70.00"], result.output


# ---------------------------------------------------------------------------- help examples
def _config_models():
    from mct.config import Config
    from mct.data.synth.config import SynthConfig
    from mct.detect.config import DetectorTrainConfig
    from mct.reid.config import ReidAdaptConfig, ReidTrainConfig

    return {"config": Config, "run": Config, "synth": SynthConfig, "train-detector": DetectorTrainConfig,
            "train-reid": ReidTrainConfig, "adapt": ReidAdaptConfig}


def _has_key(model, dotted: str) -> bool:
    from pydantic import BaseModel

    for part in dotted.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return False
        ann = model.model_fields[part].annotation
        model = next((a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel)), ann)
    return True


def test_every_set_example_in_the_help_is_a_key_of_that_commands_config():
    import re

    models = _config_models()
    with_set = [name for name, cmd in main.commands.items() if any(p.name == "overrides" for p in cmd.params)]
    assert sorted(with_set) == sorted(models)  # a new command with --set needs its model here
    for name in with_set:
        text = " ".join(CliRunner().invoke(main, [name, "--help"]).output.split())
        examples = [k for k in re.findall(r"--set ([A-Za-z_][\w.]*)=", text) if k != "KEY"]
        assert examples, f"mct {name} --help: no --set example"
        for key in examples:
            assert _has_key(models[name], key), f"mct {name} --help: --set {key}: not a key of {models[name].__name__}"


def test_a_key_in_the_wrong_section_points_to_where_it_lives():
    # the run's name is top-level, not under run:
    result = CliRunner().invoke(main, ["config", "--set", "run.name=x"])
    assert result.exit_code == 2
    assert "run.name: unknown key (did you mean name?)" in " ".join(result.output.split()), result.output
    # workers belong to run:, not to the tracker
    result = CliRunner().invoke(main, ["config", "--set", "tracker.workers=3"])
    assert "tracker.workers: unknown key (did you mean run.workers?)" in " ".join(result.output.split()), result.output
