from click.testing import CliRunner

from mct.cli import main

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


def test_run_table_prints_a_camera_error_as_is(monkeypatch):
    import signal

    import mct.run.pipeline as pipeline
    from mct.run.camera_job import CameraResult

    error = "ValueError: data/S01/c001/gt/gt.txt:100: expected 10 columns [got 6]"
    summary = pipeline.RunSummary(name="demo", run_dir="runs/demo", status="failed",
                                  cameras=[CameraResult("S01", "c001", status="failed", error=error)],
                                  association={"status": "skipped", "reason": "no cameras"},
                                  evaluation={"status": "skipped", "reason": "no association result"})
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *a, **k: summary)
    before = signal.getsignal(signal.SIGTERM)  # the command installs its own SIGTERM handler
    try:
        result = CliRunner().invoke(main, ["-q", "run", "configs/demo.yaml"])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert result.exit_code == 1
    text = "".join(result.output.split())
    assert "FAILEDS01_c001:" + "".join(error.split()) in text, result.output
    assert "\N{HUNDRED POINTS SYMBOL}" not in result.output
