"""Errors a plugin raises (or returns); the host branches on the kind."""

from __future__ import annotations

from typing import Optional


class PluginError(Exception):
    """A `plugin-error`: raise one of the subclasses below from `process`, `build` or `__init__`."""

    kind = "internal"

    def __init__(self, message: str = "", location: Optional[str] = None):
        super().__init__(message)
        self.message = str(message)
        #: Where in the input, for an item error inside `Keep(...)` (e.g. "line 12").
        self.location = None if location is None else str(location)

    def at(self, location: str) -> "PluginError":
        """This error as an item of `Keep(...)`, found at `location`: one error row, the other
        items are kept (`Keep(a, InvalidInput("no text").at("line 2"), c)`)."""
        self.location = str(location)
        return self

    def at_line(self, line: int) -> "PluginError":
        """`at("line N")`: an item found at line `line` (1-based) of the input file; the host puts
        the number in the error row's `line` (`Keep(a, InvalidInput("3 fields, not 4").at_line(7))`)."""
        return self.at(f"line {int(line)}")


class InvalidInput(PluginError):
    """This record cannot be handled: it goes to the error output, the run goes on."""

    kind = "invalid-input"


class InvalidConfig(PluginError):
    """The plugin's `config` block is wrong: the task stops before any request (raise it from `__init__`)."""

    kind = "invalid-config"


class Unsupported(PluginError):
    """The plugin does not support this input (e.g. a raw file given to a records-only preprocessor)."""

    kind = "unsupported"


class Internal(PluginError):
    """A bug or an unexpected state inside the plugin (any other exception becomes this, with its traceback)."""

    kind = "internal"


class Retry(Exception):
    """Score parsers: the reply is unusable, ask the model again with `hint` appended as a user turn.

    Return it or raise it from `parse`."""

    def __init__(self, hint: str):
        super().__init__(hint)
        self.hint = str(hint)


class Invalid(Exception):
    """Score parsers: the reply is unusable and a retry will not help; the record goes to the error output.

    Return it or raise it from `parse`."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = str(message)
