"""Every setting is declared once (lfengine/settings.py) and every list a user meets is generated
from that declaration: the command line's flags and --set keys, the options and model settings
the protocol accepts, describe's listing, protocol.md's tables and the GATE wrapper's spellings.
Each list is read from the running code (a parser, a real engine, describe's output), not from
the declarations, and compared with them: every setting exactly once, none missing."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections import Counter
from pathlib import Path

import pytest
from engine_process import Engine

from lfengine import cli
from lfengine.builder.config import ModelConfig, coerce_value
from lfengine.builder.heuristics import RULES, user_settings
from lfengine.cli.arguments import OLD_SPELLINGS
from lfengine.data.synthetic import write_classification_corpus
from lfengine.errors import OptionError
from lfengine.gate.options import TRAIN_SPECS, train_settings_from
from lfengine.options import TrainOptions
from lfengine.settings import (
    DESCRIBED_OPTIONS,
    MODEL_SETTINGS,
    OPTIONS,
    RUN,
    SETTINGS,
    model_setting_of,
)

REPO = Path(__file__).resolve().parent.parent
OPTION_NAMES = [s.name for s in OPTIONS]
MODEL_NAMES = [s.name for s in MODEL_SETTINGS]


def test_every_setting_is_declared_once_and_is_an_option_a_model_setting_or_both() -> None:
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    assert {s.name for s in SETTINGS} == set(OPTION_NAMES) | set(MODEL_NAMES)
    assert [f.name for f in dataclasses.fields(TrainOptions)] == OPTION_NAMES
    assert [f.name for f in dataclasses.fields(ModelConfig)] == MODEL_NAMES
    assert set(RULES) == set(MODEL_NAMES)  # each model setting has its default rule
    defaults = TrainOptions()
    assert all(getattr(defaults, s.name) == (s.default if s.json_type != "dict" else {}) for s in OPTIONS)
    for s in OPTIONS:  # a run option that gives a model setting defers to its rule
        assert model_setting_of(s) in (None, *MODEL_NAMES) and (s.default is None or not model_setting_of(s))


def _training_flags(parser: argparse.ArgumentParser) -> Counter:
    """dest -> how many flags of the parser's training-options group set it."""
    group = next(g for g in parser._action_groups if g.title and g.title.startswith("training options"))
    return Counter(action.dest for action in group._group_actions)


def test_the_command_line_has_one_flag_per_run_option_and_lists_every_set_key_once(capsys) -> None:
    parser = cli.build_parser()
    train = parser.commands["train"]
    assert _training_flags(train) == Counter(OPTION_NAMES)
    flags = {a.dest: a.option_strings for a in train._actions if a.dest in OPTION_NAMES}
    assert all(flags[s.name] == [s.cli_flag] for s in OPTIONS)
    shaping = Counter(s.name for s in OPTIONS if s.scope != RUN)  # describe and eject lack the run's
    assert _training_flags(parser.commands["describe"]) == shaping
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    epilog = capsys.readouterr().out.split("settings for --set KEY=VALUE")[1]
    assert re.findall(r"^  (\w+) ", epilog, re.MULTILINE) == MODEL_NAMES


def test_the_protocol_accepts_exactly_the_declared_options_and_describe_lists_them(tmp_path: Path) -> None:
    meta = write_classification_corpus(tmp_path, 60, seed=3)
    engine = Engine("json")
    try:
        reply = engine.request("describe", {"meta": str(meta), "options": {"no_such_option": 1}})
        known = reply["error"]["message"].split("; known: ")[1].split(", ")
        assert known == sorted(OPTION_NAMES)
        reply = engine.request("describe", {"meta": str(meta), "options": {"model": {"no_such_setting": 1}}})
        assert reply["error"]["message"].split("; known: ")[1].split(", ") == sorted(MODEL_NAMES)
        reply = engine.request("describe", {"meta": str(meta), "options": {"batch_size": 16}})
        shown = list(reply["result"]["hyperparameters"])
        engine.request("shutdown")
    finally:
        engine.kill()
    # describe: the model settings this network uses, in declaration order, then the run options
    # that shape the model, each once; run-only options and the settings' carrier never
    model_part = shown[: len(shown) - len(DESCRIBED_OPTIONS)]
    assert model_part == [name for name in MODEL_NAMES if name in model_part]
    assert {"module", "batch_size", "learning_rate"} <= set(model_part)
    assert shown[len(model_part) :] == [s.name for s in DESCRIBED_OPTIONS]
    assert reply["result"]["hyperparameters"]["batch_size"] == {"value": 16, "source": "option"}


def test_protocol_md_tables_list_every_setting_once_in_declaration_order() -> None:
    text = (REPO / "protocol.md").read_text(encoding="utf-8")
    block = text.split("<!-- training-options:")[1].split("<!-- end training-options -->")[0]
    options, settings = block.split("Keys of `model`")
    assert re.findall(r"^\| `(\w+)` \|", options, re.MULTILINE) == OPTION_NAMES
    assert re.findall(r"^\| `(\w+)` \|", settings, re.MULTILINE) == MODEL_NAMES


def test_every_old_wrapper_spelling_reaches_its_option() -> None:
    specs = {spec.name for spec in TRAIN_SPECS}
    for s in OPTIONS:
        if s.old:
            assert s.old in specs, f"--{s.old} is not an option of train.sh"
            if f"--{s.old}" != s.cli_flag:
                assert OLD_SPELLINGS[f"--{s.old}"] == s.cli_flag
    assert train_settings_from(["x.meta.json", "m", "--batchsize", "7"]).options.batch_size == 7
    with pytest.raises(OptionError, match="--maxepochs must be at least 1, got 0"):
        train_settings_from(["x.meta.json", "m", "--maxepochs", "0"])


def _number_cases(s) -> list[tuple[object, bool]]:
    """Values at and just beyond each end of a numeric setting's range: (value, accepted)."""
    cases = []
    for bound, is_open, outward in ((s.low, s.open_low, -1), (s.high, s.open_high, 1)):
        if bound is None:
            continue
        step = 1 if s.json_type == "int" else max(1e-9, abs(bound) * 1e-9)
        cases += [(bound, not is_open), (bound + outward * step, False)]
        if is_open:
            cases.append((bound - outward * step, True))
    return cases


@pytest.mark.parametrize(
    "setting", [s for s in SETTINGS if s.json_type in ("int", "float")], ids=lambda s: s.name
)
def test_the_declared_range_is_the_checked_range_as_option_and_as_model_setting(setting) -> None:
    for value, accepted in _number_cases(setting):
        if setting.is_option:
            if accepted:
                assert getattr(TrainOptions.from_dict({setting.name: value}), setting.name) == value
            else:
                with pytest.raises(OptionError, match=f"^{setting.name} must be"):
                    TrainOptions.from_dict({setting.name: value})
        if setting.is_model:
            if accepted:
                assert coerce_value(setting.name, value) == value
            else:
                with pytest.raises(OptionError, match=f"^model setting {setting.name} must be"):
                    coerce_value(setting.name, value)


def test_a_run_option_and_its_model_setting_must_agree() -> None:
    assert user_settings(TrainOptions(ngram_layer="lstm", batch_size=8)) == {
        "list_encoder": "lstm",
        "batch_size": 8,
    }
    with pytest.raises(OptionError, match="option batch_size=8 contradicts model setting batch_size=9"):
        user_settings(TrainOptions(batch_size=8, model={"batch_size": 9}))
