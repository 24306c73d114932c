"""Host functions and the per-call context.

Inside a component these call the host (`modelcall:plugin/host`); natively (plain `python`,
for unit tests) they have stand-ins: `log` prints to stderr, the token functions use
`tiktoken`'s o200k_base when it is installed and otherwise a rough 4-bytes-a-token estimate.
"""

from __future__ import annotations

import sys

try:  # componentize-py generates `wit_world` into the component; it is absent natively.
    from wit_world.imports import host as _wit_host
    from wit_world.imports import types as _wit_types
except ImportError:  # pragma: no cover - depends on the environment
    _wit_host = None
    _wit_types = None

LEVELS = ("trace", "debug", "info", "warn", "error")


def in_component() -> bool:
    """True when running inside a modelcall component (the host functions are the real ones)."""
    return _wit_host is not None


def log(level: str, message: str) -> None:
    """A log line (level `trace`, `debug`, `info`, `warn` or `error`), attributed by the host to
    the plugin and the current record. `print()` also works, but only reaches trap reports."""
    level = str(level).lower()
    if level == "warning":
        level = "warn"
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if _wit_host is not None:
        _wit_host.log(_wit_types.LogLevel[level.upper()], str(message))
    else:
        print(f"[plugin {level}] {message}", file=sys.stderr)


def count_tokens(text: str) -> int:
    """Number of o200k_base tokens in `text` (the encoding behind `content_truncate_32k`)."""
    if _wit_host is not None:
        return _wit_host.count_tokens(text)
    return _native_count(text)


def truncate_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` holding at most `max_tokens` o200k_base tokens.

    Only a window of the text a few times `max_tokens` long crosses to the host, doubled until
    the cut falls well inside it (a token covers at least one byte, so a prefix of
    `max_tokens` characters or more always holds `max_tokens` tokens' worth of text)."""
    max_tokens = int(max_tokens)
    if max_tokens < 0:
        raise ValueError("max_tokens must be >= 0")
    # A token covers at least one byte, so a text of at most `max_tokens` UTF-8 bytes fits
    # whole: no host call (a 1 KB record under a 2,000-token budget, the common case).
    if len(text) <= max_tokens and (text.isascii() or len(text.encode("utf-8", "surrogatepass")) <= max_tokens):
        return text
    window = max(max_tokens * 5, 4096)
    while True:
        if window >= len(text):
            return _truncate(text, max_tokens)
        cut = _truncate(text[:window], max_tokens)
        if len(cut) + 256 < window:
            return cut
        window *= 2


def _truncate(text: str, max_tokens: int) -> str:
    if _wit_host is not None:
        return _wit_host.truncate_tokens(text, max_tokens)
    return _native_truncate(text, max_tokens)


_encoding = None


def _tiktoken():
    global _encoding
    if _encoding is None:
        try:
            import tiktoken

            _encoding = tiktoken.get_encoding("o200k_base")
        except Exception:  # not installed, or no network to fetch the tables
            _encoding = False
    return _encoding


def _native_count(text: str) -> int:
    enc = _tiktoken()
    if enc:
        return len(enc.encode_ordinary(text))
    return (len(text.encode("utf-8")) + 3) // 4


def _native_truncate(text: str, max_tokens: int) -> str:
    enc = _tiktoken()
    if enc:
        tokens = enc.encode_ordinary(text)
        if len(tokens) <= max_tokens:
            return text
        prefix = enc.decode_bytes(tokens[:max_tokens])
        return prefix.decode("utf-8", errors="ignore")
    data = text.encode("utf-8")
    return data[: max_tokens * 4].decode("utf-8", errors="ignore")


class Context:
    """What the host tells a plugin about the current call: `task_name`, `record_id` (the
    record's stable key) and `attempt` (1, then 2… on re-asks after a score parser's `Retry`).

    Valid during the call it is given to; read what you need before returning."""

    __slots__ = ("_handle", "_task_name", "_record_id", "_attempt")

    def __init__(self, handle=None, *, task_name: str | None = None, record_id: str | None = None, attempt: int | None = None):
        self._handle = handle
        self._task_name = task_name
        self._record_id = record_id
        self._attempt = attempt

    @classmethod
    def for_test(cls, task_name: str = "test", record_id: str = "r1", attempt: int = 1) -> "Context":
        """A context for unit tests."""
        return cls(None, task_name=task_name, record_id=record_id, attempt=attempt)

    def _ask(self, method: str):
        if self._handle is None:
            raise RuntimeError(f"call context used after its call returned (read ctx.{method} during the call)")
        return getattr(self._handle, method)()

    @property
    def task_name(self) -> str:
        if self._task_name is None:
            self._task_name = self._ask("task_name")
        return self._task_name

    @property
    def record_id(self) -> str:
        if self._record_id is None:
            self._record_id = self._ask("record_id")
        return self._record_id

    @property
    def attempt(self) -> int:
        if self._attempt is None:
            self._attempt = self._ask("attempt")
        return self._attempt

    def _release(self) -> None:
        self._handle = None

    def __repr__(self) -> str:
        return f"Context(task_name={self._task_name!r}, record_id={self._record_id!r}, attempt={self._attempt!r})"
