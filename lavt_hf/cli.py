# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Checks shared by the command-line tools: a user's mistake is found before any work starts and reported as
one line, ``<prog>: error: <what>, <where>; <what to do>``, exit status 2; a traceback is left for bugs."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from modeling_lavt.validation import is_hub_repo_id


class UsageError(ValueError):
    """A mistake in a tool's options or inputs (not a bug): one line and exit status 2."""


class NotFoundError(UsageError, FileNotFoundError):
    """A file or folder named by an option does not exist."""


def exit_with_usage_error(prog: str, message: str) -> NoReturn:
    """Print ``<prog>: error: <message>`` as one line on stderr and exit with status 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose mistakes are one line (no usage block), and which takes no option from a
    prefix: a misspelt option is an error, not silently another option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> NoReturn:
        exit_with_usage_error(self.prog, message)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        # A misspelt option is named before argparse reports the required one it stood for as missing.
        args = sys.argv[1:] if args is None else list(args)
        unknown, in_unknown = [], False  # an unknown option with the values after it, as argparse lists them
        for token in args:
            if token == "--":  # what follows is positional
                break
            if token.startswith("-"):
                in_unknown = token.startswith("--") and token.split("=", 1)[0] not in self._option_string_actions
            if in_unknown:
                unknown.append(token)
        if unknown and self._subparsers is None:
            self.error(unknown_arguments_message(self, unknown))
        return super().parse_args(args, namespace)


@contextlib.contextmanager
def usage_errors_exit(prog: str, *kinds: type[Exception], prefix: str = "") -> Iterator[None]:
    """A `UsageError` (or one of `kinds`, a library's words for bad input) raised inside a `with` block or a
    decorated function: one line, ``<prog>: error: <prefix><error>``, and exit status 2."""
    try:
        yield
    except (UsageError, *kinds) as error:
        exit_with_usage_error(prog, prefix + str(error))


def unknown_arguments_message(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """argparse's "unrecognized arguments" message for `extras`, with the closest known option of each
    misspelt one, e.g. ``unrecognized arguments: --learning_rte 0.1; did you mean --learning_rate?``."""
    known = list(parser._option_string_actions)
    hints = {}
    for token in extras:
        option = token.split("=", 1)[0]
        name, dot, key = option.partition(".")  # `--option.key`: the key of a mapping option is kept
        close = difflib.get_close_matches(name, known, n=1) if option.startswith("--") else []
        if close:
            hints[option] = close[0] + dot + key
    if len(hints) > 1:
        hints = {option: f"{close} (for {option})" for option, close in hints.items()}
    message = f"unrecognized arguments: {' '.join(extras)}"
    return f"{message}; did you mean {', '.join(hints.values())}?" if hints else message


def unwritable_reason(path: str | Path) -> str | None:
    """Why the folder `path` cannot be created or written into, or None. The nearest existing part must be
    a folder that takes a new file, tried for real (permission bits miss read-only file systems, quotas)."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "it" if existing == path else f"its parent {existing}"
        return f"{where} is a file, not a folder"
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        return f"cannot write into {existing} ({error.strerror or error})"
    return None


def check_writable_dir(path: str | Path, flag: str, prog: str | None = None) -> None:
    """Refuse an output folder that cannot be written: raises `UsageError` naming `flag` and the reason, or
    with `prog` prints the one-line error and exits with status 2."""
    reason = unwritable_reason(path)
    if reason is not None:
        message = f"{flag} {path}: {reason}; choose another folder"
        if prog is None:
            raise UsageError(message)
        exit_with_usage_error(prog, message)


def check_source_exists(source: str, flag: str) -> None:
    """Refuse a local path that does not exist; only a Hub id ("name" or "owner/name") is left to the Hub."""
    if not Path(source).exists() and not is_hub_repo_id(source):
        raise NotFoundError(f"{flag} {source}: not found (no such file or folder, from {Path.cwd()}); "
                            "give an existing path or a Hub id of the form owner/name")


@contextlib.contextmanager
def dataset_errors(source: str) -> Iterator[None]:
    """The data loader's errors about the user's data as `UsageError`s naming --dataset and `source` (one not
    found locally nor on the Hub is said to be so)."""
    check_source_exists(source, "--dataset")
    try:
        yield
    # ValueError: the loaders' words for data that does not fit the expected layout
    except (ConnectionError, FileNotFoundError, ValueError) as error:
        if isinstance(error, ValueError) or Path(source).exists():
            raise UsageError(f"--dataset {source}: {error}") from error
        raise NotFoundError(f"--dataset {source}: not found: no such local folder (from {Path.cwd()}), and "
                            f"no Hub dataset of that id could be loaded ({error}); check the path") from error


def range_problem(value: float, minimum: float, exclusive: bool = False) -> str | None:
    """Why `value` is outside [minimum, inf) (or (minimum, inf) with `exclusive`), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if value < minimum or (exclusive and value == minimum):
        return f"must be {'>' if exclusive else '>='} {minimum}"
    return None


def ranged(kind: type, minimum: float, exclusive: bool = False) -> Callable[[str], float]:
    """An argparse `type`: converts to `kind` and refuses what `range_problem` refuses."""

    def convert(text: str):
        value = kind(text)
        if problem := range_problem(value, minimum, exclusive):
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in "invalid <name> value"
    return convert


positive_int = ranged(int, 1)
non_negative_int = ranged(int, 0)
non_negative_float = ranged(float, 0.0)
positive_float = ranged(float, 0.0, exclusive=True)


def model_folder(text: str) -> str:
    """An argparse `type` for --model (a folder or Hub id): refuses a file, e.g. the config.json inside one."""
    if Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a model folder; give its folder "
                                         f"({Path(text).parent})")
    return text
