"""Config files for the command line: ``edgegrow COMMAND --config FILE.toml`` instead of long flag lists.

The file's keys are the command's flags without the leading dashes (``cache-dir`` or ``cache_dir``);
values are TOML strings, numbers, booleans (a switch such as ``quick = true``) or, for a flag that
may be repeated, a list. ``budget`` may also be a table: ``budget = { latency_ms = 0.05, sram_kb = 64 }``.
A flag given on the command line wins over the file. Example, for ``edgegrow grow``::

    task = "kws"
    target = "cortex-m4f-120mhz"
    budget = { latency_ms = 40, sram_kb = 64 }
    method = "firefly"
    out = "runs/kws-m4"
"""
from __future__ import annotations

import argparse
from pathlib import Path

NO_TOML = "reading --config needs Python 3.11 or later, or the tomli package on 3.10 (pip install tomli)"


def _toml():
    """The TOML reader: the standard library's tomllib (3.11+), else tomli (the same API, 3.10).
    Imported only when a --config is read, so every other command runs without either."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError(NO_TOML) from None
    return tomllib


def _options(subparser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Option name (dashes, no leading ``--``) → action, for the subcommand's optional flags."""
    found = {}
    for action in subparser._actions:  # argparse has no public accessor for a parser's actions
        for string in action.option_strings:
            if string.startswith("--") and string not in ("--help", "--config"):
                found[string[2:]] = action
    return found


def _tokens(flag: str, action: argparse.Action, value, path: Path) -> list[str]:
    if isinstance(value, bool) and action.nargs == "?" and action.const is True:  # a switch that may take a value
        return [f"--{flag}"] if value else []                                      # (--resume [RUN_DIR])
    if isinstance(action, argparse.BooleanOptionalAction):  # --restart / --no-restart
        if not isinstance(value, bool):
            raise ValueError(f"{path}: '{flag}' is a switch; write {flag} = true or false")
        name, negated = (flag[3:], True) if flag.startswith("no-") else (flag, False)
        return [f"--{name}" if value != negated else f"--no-{name}"]
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ValueError(f"{path}: '{flag}' is a switch; write {flag} = true or false")
        return [f"--{flag}"] if value else []
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, dict):
            value = [f"{key}={item}" for key, item in value.items()]
        values = value if isinstance(value, list) else [value]
        return [token for item in values for token in (f"--{flag}", str(item))]
    if isinstance(value, list) and "," in str(action.metavar or ""):  # a comma-separated flag (--classes WORD,WORD)
        return [f"--{flag}", ",".join(str(item) for item in value)]
    if isinstance(value, (dict, list)):
        raise ValueError(f"{path}: '{flag}' takes one value, not a {type(value).__name__}")
    return [f"--{flag}", str(value).lower() if isinstance(value, bool) else str(value)]


def expand_config(argv: list[str], subparsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    """``argv`` with ``--config FILE`` replaced by the file's settings as flags (placed before the
    command line's own flags, so those win); unchanged when there is no ``--config``.

    ``subparsers`` maps each command (``"grow"``, or ``"data kws"`` for a nested one) to its parser.

    Raises:
        ValueError: a missing or malformed file, or a key that is not one of the command's flags.
    """
    if "--config" not in argv and not any(arg.startswith("--config=") for arg in argv):
        return argv
    words = [arg for arg in argv if not arg.startswith("-")][:2]
    command = " ".join(words) if " ".join(words) in subparsers else (words[0] if words else None)
    if command not in subparsers:
        raise ValueError("--config goes after a command, e.g. edgegrow grow --config run.toml")
    rest, path = [], None
    iterator = iter(argv)
    for arg in iterator:
        if arg == "--config":
            path = next(iterator, None)
            if path is None:
                raise ValueError("--config needs a file, e.g. --config run.toml")
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no config file at {path}")
    tomllib = _toml()
    try:
        settings = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid TOML ({error})") from None
    options = _options(subparsers[command])
    given = {arg[2:].split("=", 1)[0] for arg in rest if arg.startswith("--")}
    tokens: list[str] = []
    for key, value in settings.items():
        flag = key.replace("_", "-")
        if flag not in options:
            raise ValueError(f"{path}: unknown key '{key}' for 'edgegrow {command}'; keys are the command's flags: "
                             f"{', '.join(sorted(options))}")
        if flag in given:
            continue  # the command line wins
        tokens += _tokens(flag, options[flag], value, path)
    position = rest.index(command.split()[-1]) + 1
    return rest[:position] + tokens + rest[position:]
