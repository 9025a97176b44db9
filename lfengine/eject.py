"""``lfengine eject``: the auto-built network written out as editable PyTorch source.

The source is generated from the same layout and configuration that ``describe`` and ``train``
use, with every size written as a number and a comment naming the LF columns each layer reads.
Its module tree mirrors the built network's, so the state-dict names are the same: the weights
of a model trained without ``--module`` load into the ejected class unchanged, and training the
ejected class (``--module FILE.py:Class``) builds and initialises exactly the same parameters.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from lfengine import __version__
from lfengine.builder.base import TaskModel
from lfengine.builder.build import NetworkPlan, build_network
from lfengine.builder.config import ModelConfig
from lfengine.builder.eject_source import render_source
from lfengine.builder.heuristics import choose_config
from lfengine.builder.registry import AUTO
from lfengine.data.codec import Codec, build_codec
from lfengine.data.meta import read_meta
from lfengine.errors import ModelError, OptionError
from lfengine.files.safe_io import atomic_write
from lfengine.options import TrainOptions
from lfengine.planning import planned_training_size
from lfengine.storage import store

#: Module names whose network ``eject`` can write (the auto-built networks and their variants).
EJECTABLE = (None, AUTO, "Classifier", "SequenceTagger", "Regressor", "BiLstmCrfTagger", "MlpClassifier")


@dataclass
class EjectSource:
    """What the generated file is written from: the codec, the settings, and where they came from."""

    codec: Codec
    config: ModelConfig
    origin: tuple[str, str]  # ("meta file", path) or ("model directory", path)
    meta_hint: str  # the meta file to name in the training command of the docstring


def source_from_meta(meta_path: str, options: TrainOptions) -> EjectSource:
    """The network ``lfengine train META`` would build with these options (as describe shows it).

    A module eject cannot write out is refused before the settings are chosen, so that no user
    module file is imported (eject imports none: registry.allow_modules is never entered)."""
    for module in options.named_modules():
        check_ejectable(module)
    spec = read_meta(meta_path)
    codec, _ = build_codec(spec, embs=options.embs, maxlens=options.maxlens, seed=options.seed)
    config, _ = choose_config(codec.layout(), options, planned_training_size(spec, options))
    return EjectSource(codec, config, ("meta file", meta_path), meta_path)


def source_from_model(model_dir: str) -> EjectSource:
    """The network stored in a trained model directory (model.json only; nothing is imported)."""
    metadata, _ = store.load_model_dir(model_dir, map_location="cpu")  # resolves the codec file
    try:
        codec = Codec.from_dict(metadata["codec"])
        config = ModelConfig.from_dict(metadata["config"])
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{model_dir}: model.json lacks or garbles {exc}", file=str(model_dir)) from None
    meta_hint = str(metadata.get("training", {}).get("meta_file") or "META")
    return EjectSource(codec, config, ("model directory", str(model_dir)), meta_hint)


def class_name_for(path: str) -> str:
    """A CamelCase class name from the output file name (my_network.py -> MyNetwork)."""
    words = re.findall(r"[0-9A-Za-z]+", Path(path).stem)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "EjectedNetwork"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "Net" + name
    return name


def check_ejectable(module: str | None) -> None:
    """Refuse a module that eject cannot write out (a predefined module or a user's file)."""
    if module not in EJECTABLE:
        raise OptionError(
            f"eject writes out the auto-built networks ({', '.join(m for m in EJECTABLE if m)}); "
            f"module {module!r} is already source: copy its class from lfengine/builder/modules.py "
            "or from your own file"
        )


def eject(source: EjectSource, output: str, class_name: str | None = None) -> str:
    """Write the source file; returns the class name. Refuses networks it cannot write out."""
    check_ejectable(source.config.module)
    name = class_name or class_name_for(output)
    if not name.isidentifier() or keyword.iskeyword(name):
        raise OptionError(f"--class {name!r} is not a Python class name")
    if not Path(output).parent.is_dir():
        raise OptionError(f"cannot write {output}: the folder {Path(output).parent} does not exist")
    text = render_source(
        source.codec.layout(),
        source.config,
        class_name=name,
        origin=source.origin,
        meta_hint=source.meta_hint,
        file_name=Path(output).name,
        version=__version__,
        first_party=_inside_checkout(Path(output)),
    )
    atomic_write(Path(output), lambda handle: handle.write(text.encode("utf-8")))
    return name


def _inside_checkout(path: Path) -> bool:
    """True when the file lands in the lfengine source tree (where lfengine is first-party)."""
    root = Path(__file__).resolve().parent.parent
    return (root / "setup.py").is_file() and path.resolve().is_relative_to(root)


def load_weights(network_class: type[TaskModel], model_dir: str) -> tuple[TaskModel, Codec]:
    """Build ``network_class`` for a trained model's data and load the model's weights into it.

    This is how a user runs an ejected (or edited) class on a model trained with the built
    network: the class is the caller's own import, nothing named in the model is imported.
    """
    metadata, weights = store.load_model_dir(model_dir, map_location="cpu")
    codec = Codec.from_dict(metadata["codec"])
    config = ModelConfig.from_dict(metadata["config"])
    torch.manual_seed(0)  # parameters are overwritten below; only keeps construction deterministic
    network = build_network(NetworkPlan(codec.layout(), config), network_class)
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        raise ModelError(f"{model_dir}: the weights do not fit {network_class.__name__}: {exc}") from None
    return network, codec
