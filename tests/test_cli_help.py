"""The command line explains itself: --help of every subcommand and option, suggestions for
mistyped options, settings and the old wrapper's spellings, global flags after the subcommand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lfengine import cli
from lfengine.cli.commands import COMMANDS
from lfengine.data.synthetic import write_sequence_corpus
from lfengine.settings import MODEL_SETTINGS, OPTIONS

PARSER = cli.build_parser()
SUBCOMMANDS = {c.name: PARSER.commands[c.name] for c in COMMANDS if c.arguments is not None}


def options_of(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_a_description_examples_and_helped_arguments(name: str) -> None:
    parser = SUBCOMMANDS[name]
    assert parser.description and len(parser.description) > 40
    assert "examples:\n  lfengine " + name in parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.dest}: no help"
        if action.choices:
            for choice in action.choices:
                assert str(choice) in action.help % {"default": action.default}, (
                    f"{name} {action.dest}: {choice}"
                )
        takes_value = (
            action.option_strings and action.nargs != 0 and not isinstance(action, argparse._AppendAction)
        )
        if takes_value and action.dest not in ("config", "output", "predictions", "workdir"):
            assert "default" in action.help, f"{name} {action.dest}: no default in {action.help!r}"


def test_every_training_option_is_a_flag_with_its_own_help() -> None:
    train = SUBCOMMANDS["train"]
    helps = {a.dest: a.help for a in options_of(train)}
    for s in OPTIONS:
        assert s.name in helps, f"run option {s.name} has no flag"
        assert s.help.replace("%", "%%").split(";")[0] in helps[s.name]


def test_the_set_keys_are_listed_one_line_each_with_their_default(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for s in MODEL_SETTINGS:
        line = next((line for line in text.splitlines() if line.startswith(f"  {s.name} ")), None)
        assert line is not None, f"--set {s.name} is not listed"
        assert s.help in line and "; default: " in line


def run_main(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.main(list(args))
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "typed, suggested",
    [
        ("--maxepochs", "the old wrapper's spelling: did you mean --max-epochs?"),
        ("--batchsize", "did you mean --batch-size?"),
        ("--es_patience", "did you mean --es-patience?"),
        ("--notrain", "did you mean --no-train?"),
        ("--lerning-rate", "did you mean --learning-rate?"),
    ],
)
def test_a_mistyped_option_gets_a_suggestion(capsys, tmp_path: Path, typed: str, suggested: str) -> None:
    code, out, err = run_main(capsys, "train", "x.meta.json", str(tmp_path / "m"), typed, "3")
    assert code == 2 and out == ""
    assert f"unrecognized arguments: {typed} (" in err and f"{suggested})" in err


@pytest.fixture(scope="module")
def seq_meta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sequence_corpus(tmp_path_factory.mktemp("help"), 40, seed=2)


def test_a_mistyped_setting_gets_a_suggestion(capsys, caplog, seq_meta: Path) -> None:
    code, out, _ = run_main(capsys, "describe", str(seq_meta), "--set", "hiden_size=30")
    assert code == 1 and out == ""
    assert "--set hiden_size: unknown setting (did you mean hidden_size?)" in caplog.text


def test_an_unused_setting_is_named_with_the_network_and_describe_shows_used_ones(
    capsys, caplog, seq_meta: Path
) -> None:
    code, out, _ = run_main(capsys, "describe", str(seq_meta), "--set", "hidden_size=500", "--json")
    assert code == 0
    assert "setting hidden_size is ignored: the SequenceTagger network does not use it" in caplog.text
    shown = json.loads(out)["hyperparameters"]
    assert "hidden_size" not in shown and "cnn_kernels" not in shown  # a tagger without lists reads neither
    assert {"lstm_hidden", "crf", "char_encoder", "learning_rate"} <= set(shown)


def test_global_flags_work_after_the_subcommand(capsys, caplog, seq_meta: Path) -> None:
    code, out, _ = run_main(capsys, "describe", str(seq_meta), "--json", "-q", "--set", "hidden_size=500")
    assert code == 0 and json.loads(out)["task"] == "sequence"
    code, _, _ = run_main(capsys, "describe", str(seq_meta), "-v")
    assert code == 0


def test_version_names_python_and_torch(capsys) -> None:
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and "lfengine" in out and "python" in out and "torch" in out


def test_info_names_versions_devices_and_threads(capsys) -> None:
    code, out, _ = run_main(capsys, "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["versions"]["torch"] and "cpu" in info["devices"] and info["threads"] >= 1
    code, out, _ = run_main(capsys, "info")
    assert code == 0 and out.startswith("versions") and "threads" in out
