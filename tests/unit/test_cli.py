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
