"""Command lines in the old wrapper's style (configsimple, i.e. argparse without abbreviations).

GATE passes the PR's ``algorithmParameters`` split on whitespace after the positional arguments
(gate-plugin.md §9): ``--name value`` or ``--name=value``, switches without a value, the last
occurrence wins, an unknown option is an error. ``--config_file`` reads ``key = value`` lines
(command-line values win over the file), ``--save_config_file`` writes the effective settings.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from lfengine.errors import OptionError
from lfengine.files.paths import MAX_CONFIG_BYTES, read_regular_bytes
from lfengine.files.safe_io import atomic_write_text

#: Options every command has (configsimple added them to each parser).
CONFIG_FILE = "config_file"
SAVE_CONFIG_FILE = "save_config_file"


@dataclass(frozen=True)
class OptionSpec:
    """One old option: its name without dashes, whether it takes a value, and its help."""

    name: str
    takes_value: bool
    metavar: str = ""
    help: str = ""


@dataclass
class CommandLine:
    """The parsed tokens: positionals in order, option values (a string, or True for switches)."""

    positionals: list[str] = field(default_factory=list)
    values: dict[str, str | bool] = field(default_factory=dict)
    help: bool = False


def parse_command_line(argv: list[str], specs: tuple[OptionSpec, ...]) -> CommandLine:
    """Tokens to a CommandLine; values from ``--config_file`` fill what the command line leaves unset."""
    known = {spec.name: spec for spec in specs}
    parsed = CommandLine()
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--":
            parsed.positionals.extend(tokens[i:])
            break
        if token in ("-h", "--help"):
            parsed.help = True
            continue
        if not token.startswith("-") or token == "-":
            parsed.positionals.append(token)
            continue
        name, has_inline, inline = token.lstrip("-").partition("=")
        spec = known.get(name) if token.startswith("--") else None
        if spec is None:
            raise OptionError(_unknown(token.partition("=")[0], known))
        if not spec.takes_value:
            if has_inline:
                raise OptionError(f"--{name} is a switch and takes no value (got {token!r})")
            parsed.values[name] = True
        elif has_inline:
            parsed.values[name] = inline
        elif i < len(tokens) and not tokens[i].startswith("--"):
            parsed.values[name] = tokens[i]
            i += 1
        else:
            raise OptionError(f"--{name} expects a value ({spec.metavar or 'VALUE'})")
    config_file = parsed.values.get(CONFIG_FILE)
    if isinstance(config_file, str):
        for name, value in read_config_file(config_file, known).items():
            parsed.values.setdefault(name, value)
        parsed.values = {name: value for name, value in parsed.values.items() if value is not False}
    return parsed


def _unknown(option: str, known: dict[str, OptionSpec]) -> str:
    names = [f"--{name}" for name in known]
    close = difflib.get_close_matches(option, names, n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]}?" if close else f"; known options: {', '.join(sorted(names))}"
    return f"unknown option {option}{hint}"


_TRUE = {"true", "yes", "y", "t", "1", "on"}
_FALSE = {"false", "no", "n", "f", "0", "off"}


def read_config_file(path: str, known: dict[str, OptionSpec]) -> dict[str, str | bool]:
    """Settings from a configargparse-style file: ``name value``, ``name = value``,
    ``name: value`` or ``--name value`` per line; ``#``/``;`` comments, ``[section]`` and
    ``---`` lines are skipped; a switch is ``name`` alone or ``name = true|false``.
    """
    try:
        text = read_regular_bytes(path, MAX_CONFIG_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"cannot read --config_file {path}: it is not UTF-8 text") from None
    except OSError as e:
        raise OptionError(f"cannot read --config_file {path}: {e.strerror or e}") from None
    values: dict[str, str | bool] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;[" or stripped.startswith("---"):
            continue
        name, value = _split_setting(stripped)
        where = f"{path}:{number}"
        spec = known.get(name)
        if spec is None or name in (CONFIG_FILE, SAVE_CONFIG_FILE):
            reason = "cannot be set in a config file" if spec else "is not a known setting"
            raise OptionError(f"{where}: {name!r} {reason}")
        if spec.takes_value:
            if not value:
                raise OptionError(f"{where}: {name} needs a value")
            values[name] = value
        elif not value or value.lower() in _TRUE:
            values[name] = True
        elif value.lower() in _FALSE:
            values[name] = False
        else:
            raise OptionError(f"{where}: {name} is a switch: write true or false, not {value!r}")
    return values


def _split_setting(line: str) -> tuple[str, str]:
    for marker in (" #", "\t#", " ;", "\t;"):
        if marker in line:
            line = line.split(marker, 1)[0].rstrip()
    line = line.lstrip("-")
    for separator in ("=", ":"):
        name, found, value = line.partition(separator)
        if found and name.strip() and " " not in name.strip():
            return name.strip(), value.strip()
    name, _, value = line.partition(" ")
    return name.strip(), value.strip()


def write_config_file(path: str, values: dict[str, str | bool], *, program: str) -> None:
    """Write the settings so that ``--config_file`` reads them back unchanged."""
    lines = [f"# settings of {program}, readable with --config_file"]
    for name, value in values.items():
        if name in (CONFIG_FILE, SAVE_CONFIG_FILE):
            continue
        lines.append(f"{name} = {'true' if value is True else value}")
    try:  # a fresh temporary name, opened with O_EXCL: a link planted beside it is never followed
        atomic_write_text(path, "\n".join(lines) + "\n")
    except OSError as e:
        raise OptionError(f"cannot write --save_config_file {path}: {e.strerror or e}") from None


def format_usage(program: str, positionals: str, specs: tuple[OptionSpec, ...], epilog: str = "") -> str:
    width = max(len(f"--{s.name} {s.metavar}") for s in specs) + 2
    lines = [f"usage: {program} {positionals} [OPTION ...]", "", "options:"]
    lines.append(f"  {'-h, --help':<{width}}show this help and exit")
    for spec in specs:
        left = f"--{spec.name} {spec.metavar}".rstrip()
        lines.append(f"  {left:<{width}}{spec.help}")
    if epilog:
        lines += ["", epilog]
    return "\n".join(lines) + "\n"
