"""How every command ends: the one wrapper between the Typer app and the user.

Whatever a command raises becomes one line on stderr and an exit code:

* bad input (a :class:`~frontdesk.errors.FrontdeskError`, a usage error, a file that
  is missing or unreadable): ``error: …`` naming the file, line and field where there
  is one, exit 2;
* anything else is a fault of frontdesk: ``error: internal error: …`` with a hint,
  exit 1;
* Ctrl-C: ``aborted``, exit 130.

``frontdesk --debug …`` or ``FRONTDESK_DEBUG=1`` prints the traceback first.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Sequence
from itertools import takewhile
from typing import Any

from rich.markup import escape
from typer.core import TyperGroup

from ..errors import FrontdeskError
from ._common import err, errors_and_warnings

DEBUG_ENV = "FRONTDESK_DEBUG"
MAX_LINE = 2_000  # characters of one error line; a message quoting a huge input is cut
BAD_INPUT, INTERNAL, INTERRUPTED = 2, 1, 130

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BREAKS = re.compile(r"\s*[\n\r\t]\s*")
_USER_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def debug_requested(args: Sequence[str], environ: dict[str, str] | None = None) -> bool:
    """``--debug`` among the options before the command, or ``FRONTDESK_DEBUG`` set (not 0)."""
    env = os.environ if environ is None else environ
    if env.get(DEBUG_ENV, "").strip() not in {"", "0", "false", "no"}:
        return True
    return "--debug" in takewhile(lambda a: a.startswith("-"), args)


def one_line(text: str) -> str:
    """``text`` as one printable line: breaks become spaces, control characters and
    undecodable bytes are escaped, and a very long message is cut."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _BREAKS.sub(" ", text.strip())
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def describe(exc: BaseException) -> tuple[str | None, int]:
    """The line a user sees for ``exc`` (None: nothing to print) and the exit code."""
    format_message = getattr(exc, "format_message", None)
    exit_code = getattr(exc, "exit_code", None)
    if callable(format_message) and isinstance(exit_code, int):  # Click's usage errors
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
        return f"{format_message()}{hint}", exit_code
    if type(exc).__name__ == "Abort" or isinstance(exc, KeyboardInterrupt):
        return None, INTERRUPTED
    if isinstance(exc, FrontdeskError | FileExistsError):
        return str(exc), BAD_INPUT
    if isinstance(exc, _USER_FILE_ERRORS) and exc.filename is not None:
        reason = (exc.strerror or str(exc)).lower()
        return f"{exc.filename}: {reason}", BAD_INPUT
    if isinstance(exc, MemoryError):
        return (
            "out of memory; lower a limit of docs/limits.md (FRONTDESK_MAX_*) or give "
            "frontdesk more memory",
            INTERNAL,
        )
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return (
        f"internal error ({detail}); this is a bug in frontdesk: run the command again "
        f"with --debug (or {DEBUG_ENV}=1) to see the traceback, and report it",
        INTERNAL,
    )


class FrontdeskGroup(TyperGroup):
    """The root command: runs the command Click chose, then reports its end (see module)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = debug_requested(argv)
        try:
            with errors_and_warnings():  # warnings: one line each, for the whole command
                rv = super().main(
                    args=argv,
                    prog_name=prog_name,
                    complete_var=complete_var,
                    standalone_mode=False,
                    **extra,
                )
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except SystemExit:
            raise
        except BaseException as exc:
            code = self._report(exc, debug)
        if standalone_mode:
            sys.exit(code)
        return code

    @staticmethod
    def _report(exc: BaseException, debug: bool) -> int:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as Click does
            sys.stdout.write(exc.format_message() + "\n")  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        message, code = describe(exc)
        if message is None:
            err.print("aborted", highlight=False, emoji=False)
        else:
            err.print(f"[red]error:[/] {escape(one_line(message))}", highlight=False, emoji=False)
        return code
