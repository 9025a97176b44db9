"""The old wrapper's options (gate-plugin.md §9) and how they map onto lfengine."""

from __future__ import annotations

import os

import pytest

from lfengine.errors import OptionError
from lfengine.gate.options import (
    APPLY_SPECS,
    TRAIN_SPECS,
    apply_settings_from,
    save_settings,
    train_settings_from,
)
from lfengine.options import TrainOptions

CWD = os.path.abspath(os.sep + os.path.join("data", "dir"))
POSITIONALS = ["crvd.meta.json", "FileJsonPyTorch.model"]


def train(*options: str, cwd: str = CWD):
    return train_settings_from([*POSITIONALS, *options], cwd=cwd)


def changed_fields(options: TrainOptions) -> dict:
    default = TrainOptions().to_dict()
    return {k: v for k, v in options.to_dict().items() if v != default[k]}


# Every option of gate-plugin.md §9.1: the arguments, and what must come of them. A callable
# checks the settings; a string must appear in a warning.
HONOURED = {
    "embs": (["--embs", "token:50:yes"], {"embs": "token:50:yes"}),
    "maxlens": (["--maxlens", ":100:left"], {"maxlens": ":100:left"}),
    "valsize": (["--valsize", "0.2"], {"valsize": 0.2}),
    "valfile": (["--valfile", "val/crvd.data.json"], {"valfile": os.path.join(CWD, "val", "crvd.data.json")}),
    "batchsize": (["--batchsize", "16"], {"batch_size": 16}),
    "maxepochs": (["--maxepochs", "3"], {"max_epochs": 3}),
    "learningrate": (["--learningrate", "0.01"], {"learning_rate": 0.01}),
    "module": (["--module", "TextClassCnnSingle"], {"module": "TextClassCnnSingle"}),
    "es_patience": (["--es_patience", "4"], {"es_patience": 4}),
    "es_metric": (["--es_metric", "loss"], {"es_metric": "loss"}),
    "seed": (["--seed", "42"], {"seed": 42}),
    "cuda": (["--cuda", "false"], {"device": "cpu"}),
    "resume": (["--resume"], {"resume": True}),
    "notrain": (["--notrain"], {"no_train": True}),
    "ngram_layer": (["--ngram_layer", "lstm"], {"ngram_layer": "lstm"}),
    "stopfile": (["--stopfile", "STOP2"], {"stop_file": os.path.join(CWD, "STOP2")}),
    "valeveryepochs": (["--valeveryepochs", "2"], {"validate_every_epochs": 2}),
    "valeverybatches": (["--valeverybatches", "5"], {"validate_every_batches": 5}),
    "valeveryinstances": (["--valeveryinstances", "100"], {"validate_every_instances": 100}),
    "repeveryinstances": (["--repeveryinstances", "500"], {"report_every_instances": 500}),
    "repeverybatches": (["--repeverybatches", "10"], {"report_every_batches": 10}),
    "noshuffle": (["--noshuffle"], {"shuffle": False}),
}
SETTINGS = {
    "nocreate": (["--nocreate"], lambda s: s.no_create),
    "debug": (["--debug"], lambda s: s.debug),
    "save_config_file": (["--save_config_file", "out.cfg"], lambda s: s.save_config_file == f"{CWD}/out.cfg"),
}
WARNED = {
    "wrapper": (["--wrapper", "ModelWrapperSimple"], "--wrapper ModelWrapperSimple is ignored"),
    "elmo": (["--elmo", "elmodir"], "--elmo elmodir is ignored: ELMo modules are not supported"),
}
TESTED_ELSEWHERE = {"config_file"}  # test_config_file_values_are_overridden_by_the_command_line


def test_every_training_option_of_the_old_wrapper_is_covered_here():
    assert {spec.name for spec in TRAIN_SPECS} == set(HONOURED) | set(SETTINGS) | set(
        WARNED
    ) | TESTED_ELSEWHERE


@pytest.mark.parametrize("name", sorted(HONOURED))
def test_option_is_honoured_as_a_train_option(name):
    args, expected = HONOURED[name]
    settings = train(*args)
    assert changed_fields(settings.options) == expected
    assert settings.warnings == []


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_option_is_honoured_by_the_gate_command(name):
    args, check = SETTINGS[name]
    settings = train(*args)
    assert check(settings)
    assert changed_fields(settings.options) == {} and settings.warnings == []


@pytest.mark.parametrize("name", sorted(WARNED))
def test_unsupported_option_is_accepted_with_a_warning_naming_it(name):
    args, text = WARNED[name]
    settings = train(*args)
    assert len(settings.warnings) == 1 and text in settings.warnings[0]
    assert changed_fields(settings.options) == {}


def test_positionals_are_resolved_against_the_working_directory():
    settings = train(cwd=CWD)
    assert settings.meta_path == os.path.join(CWD, "crvd.meta.json")
    assert settings.model_prefix == os.path.join(CWD, "FileJsonPyTorch.model")
    absolute = train_settings_from(["/x/crvd.meta.json", "/x/FileJsonPyTorch.model"], cwd=CWD)
    assert absolute.meta_path == "/x/crvd.meta.json"


def test_no_options_means_lfengine_defaults():
    settings = train()
    assert settings.options == TrainOptions()
    assert settings.cuda is None and not settings.no_create and not settings.no_train
    assert settings.warnings == [] and settings.notes == []


def test_equals_syntax_and_last_occurrence_wins():
    settings = train("--maxepochs", "3", "--maxepochs=7", "--embs=:17", "--resume", "--resume")
    assert settings.options.max_epochs == 7 and settings.options.embs == ":17" and settings.options.resume


def test_values_may_look_like_negative_numbers():
    settings = train("--seed", "-5")
    assert settings.options.seed > 0 and "--seed -5: drew the random seed" in settings.notes[0]


@pytest.mark.parametrize("text", ["yes", "true", "y", "t", "1", "YES", "True"])
def test_cuda_true_spellings(text):
    settings = train("--cuda", text)
    assert settings.cuda is True and settings.options.device == "cuda"


@pytest.mark.parametrize("text", ["no", "false", "n", "f", "0", "False"])
def test_cuda_false_spellings(text):
    settings = train("--cuda", text)
    assert settings.cuda is False and settings.options.device == "cpu"


def test_seed_zero_draws_a_random_seed_and_says_which():
    first, second = train("--seed", "0"), train("--seed", "0")
    assert 1 <= first.options.seed < 2**31 and first.options.seed != second.options.seed
    assert f"pass --seed {first.options.seed} to repeat" in first.notes[0]


def test_unset_seed_is_fixed_so_runs_repeat():
    assert train().options.seed == train().options.seed == TrainOptions().seed


def test_valsize_is_ignored_with_a_warning_when_valfile_is_given():
    settings = train("--valsize", "0.3", "--valfile", "v.json")
    assert settings.options.valsize is None and settings.options.valfile == os.path.join(CWD, "v.json")
    assert "--valsize 0.3 is ignored because --valfile is given" in settings.warnings[0]


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("50", 50.0), ("0.1", 0.1), ("2", 2.0)])
def test_valsize_values(text, value):
    assert train("--valsize", text).options.valsize == value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--valsize", "1"], "--valsize 1 is ambiguous"),
        (["--valsize", "2.5"], "must be whole"),
        (["--valsize", "-0.1"], "--valsize must be >= 0"),
        (["--batchsize", "0"], "--batchsize must be at least 1"),
        (["--maxepochs", "x"], "--maxepochs expects a whole number, got 'x'"),
        (["--learningrate", "0"], "--learningrate must be > 0"),
        (["--learningrate", "nan"], "--learningrate must be a finite number"),
        (["--es_patience", "-1"], "--es_patience must be at least 0"),
        (["--es_metric", "f2"], "--es_metric must be one of auto, loss, accuracy, f1"),
        (["--ngram_layer", "gru"], "--ngram_layer must be one of cnn, lstm"),
        (["--cuda", "maybe"], "--cuda expects a boolean"),
        (["--valeveryinstances", "0"], "--valeveryinstances must be at least 1"),
        (["--maxepoch", "3"], "unknown option --maxepoch; did you mean --maxepochs?"),
        (["--nonsense"], "unknown option --nonsense; known options:"),
        (["-x"], "unknown option -x"),
        (["--resume=yes"], "--resume is a switch and takes no value"),
        (["--maxepochs"], "--maxepochs expects a value"),
        (["--embs", "--resume"], "--embs expects a value"),
    ],
)
def test_invalid_options_are_errors_naming_the_option(args, message):
    with pytest.raises(OptionError) as e:
        train(*args)
    assert message in e.value.message


@pytest.mark.parametrize(
    "argv", [[], ["crvd.meta.json"], ["a", "b", "c"], ["--maxepochs", "2", "crvd.meta.json"]]
)
def test_train_needs_exactly_the_two_positionals(argv):
    with pytest.raises(OptionError, match="expected the arguments METAFILE MODELPREFIX"):
        train_settings_from(argv, cwd=CWD)


def test_positionals_may_follow_options_and_double_dash():
    settings = train_settings_from(["--maxepochs", "2", "m.json", "--", "-prefix"], cwd=CWD)
    assert settings.meta_path.endswith("m.json") and settings.model_prefix.endswith("-prefix")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    assert train_settings_from([flag]).help and apply_settings_from([flag]).help


def test_config_file_values_are_overridden_by_the_command_line(tmp_path):
    config = tmp_path / "train.cfg"
    config.write_text(
        "# comment\n; also a comment\n[section]\n---\n"
        "maxepochs = 5\nbatchsize: 8\n--learningrate 0.5\nnoshuffle\nresume = false\n"
        "embs token:20  # inline comment\n",
        encoding="utf-8",
    )
    settings = train("--config_file", str(config), "--maxepochs", "9", "--resume")
    assert changed_fields(settings.options) == {
        "max_epochs": 9,
        "batch_size": 8,
        "learning_rate": 0.5,
        "shuffle": False,
        "resume": True,
        "embs": "token:20",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("maxepoch = 5\n", "train.cfg:1: 'maxepoch' is not a known setting"),
        ("\nconfig_file = other.cfg\n", "train.cfg:2: 'config_file' cannot be set in a config file"),
        ("noshuffle = perhaps\n", "noshuffle is a switch: write true or false"),
        ("maxepochs =\n", "maxepochs needs a value"),
    ],
)
def test_config_file_errors_name_file_and_line(tmp_path, text, message):
    config = tmp_path / "train.cfg"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(OptionError) as e:
        train("--config_file", str(config))
    assert message in e.value.message


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(OptionError, match="cannot read --config_file"):
        train("--config_file", str(tmp_path / "absent.cfg"))


def test_saved_config_file_reads_back_to_the_same_settings(tmp_path):
    saved = tmp_path / "saved.cfg"
    args = ["--maxepochs", "4", "--noshuffle", "--embs", "::yes:2", "--valsize", "0.25", "--seed", "7"]
    settings = train(*args, "--save_config_file", str(saved))
    save_settings(settings, "gate-train")
    again = train("--config_file", str(saved))
    assert again.options == settings.options
    assert "save_config_file" not in saved.read_text(encoding="utf-8")


# --- application ------------------------------------------------------------------------------


def apply(*options: str):
    return apply_settings_from(["FileJsonPyTorch.model", *options], cwd=CWD)


def test_apply_takes_what_apply_sh_passes():
    settings = apply("--cuda", "False", "--metafile", "/d/crvd.meta.json")
    assert settings.model_prefix == os.path.join(CWD, "FileJsonPyTorch.model")
    assert settings.meta_path == "/d/crvd.meta.json" and settings.cuda is False
    assert not settings.labeled and not settings.noret and settings.logevery == 0 and settings.warnings == []


def test_apply_later_cuda_wins_and_every_option_is_honoured():
    settings = apply(
        "--cuda",
        "False",
        "--metafile",
        "m",
        "--cuda",
        "yes",
        "--labeled",
        "--noret",
        "--logevery=10",
        "--trust_module",
    )
    assert settings.cuda is True and settings.labeled and settings.noret and settings.logevery == 10
    assert settings.trust_module and not apply().trust_module
    assert settings.warnings == []
    assert {spec.name for spec in APPLY_SPECS} == {
        "cuda",
        "metafile",
        "labeled",
        "noret",
        "logevery",
        "trust_module",
        "config_file",
        "save_config_file",
    }


def test_apply_noret_without_labeled_warns():
    assert "never use it under GATE" in apply("--noret").warnings[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--logevery", "-1"], "--logevery must be at least 0"),
        (["--maxepochs", "2"], "unknown option --maxepochs"),
        (["--labeled=1"], "--labeled is a switch"),
    ],
)
def test_apply_option_errors(args, message):
    with pytest.raises(OptionError) as e:
        apply(*args)
    assert message in e.value.message


def test_apply_needs_the_model_prefix():
    with pytest.raises(OptionError, match="expected the arguments MODELPREFIX"):
        apply_settings_from(["--labeled"], cwd=CWD)
