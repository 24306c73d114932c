"""The three plugin kinds: one base class each, and the values their methods return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from ._errors import InvalidInput, Unsupported
from ._host import Context

Record = Dict[str, Any]


class Plugin:
    """What every kind shares. Subclass one of `Preprocessor`, `PromptBuilder`, `ScoreParser`.

    * `name`, `version`: recorded in the task's provenance (default: the class name, "0.0.0").
    * `config_schema`: JSON Schema (a dict) of the `config:` block, published by `modelcall plugin check`.
    * `__init__(self, config)`: receives the `config:` block as a dict (`{}` when there is none)
      once per instance; raise `InvalidConfig("...")` (naming the key) to stop the task.

    The host keeps warm instances and rebuilds them at any time: a plugin must be a pure
    function of (config, input, context), with no state carried from one record to the next.
    """

    name: Optional[str] = None
    version: str = "0.0.0"
    config_schema: Optional[Dict[str, Any]] = None

    def __init__(self, config: Dict[str, Any]):
        self.config = config


# ---------------------------------------------------------------- preprocessor


@dataclass(frozen=True)
class File:
    """A whole input file read by the host (plugins have no file access of their own)."""

    path: str
    data: bytes


class Keep:
    """Records to pass on: `Keep(record)` (map), `Keep(a, b)` or `Keep([a, b])` (split), `Keep()` (silent filter).

    An item may be a `PluginError` (e.g. `InvalidInput("no text").at("line 2")`): it becomes one
    error row with its location, and the other items are kept."""

    __slots__ = ("records",)

    def __init__(self, *records: Union[Record, Sequence[Record]]):
        if len(records) == 1 and isinstance(records[0], (list, tuple)):
            records = tuple(records[0])
        self.records: List[Record] = list(records)

    def __eq__(self, other):
        return isinstance(other, Keep) and other.records == self.records

    def __repr__(self):
        return f"Keep({self.records!r})"


class Skip:
    """Drop the input, with a reason counted in the task report."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = str(reason)

    def __eq__(self, other):
        return isinstance(other, Skip) and other.reason == self.reason

    def __repr__(self):
        return f"Skip({self.reason!r})"


class Preprocessor(Plugin):
    """A record (a dict) or a raw `File` in; `Keep(records...)` or `Skip(reason)` out."""

    _role = "preprocessor"

    def process(self, ctx: Context, input: Union[Record, File]) -> Union[Keep, Skip]:
        raise NotImplementedError("a Preprocessor must implement process(self, ctx, input)")

    @staticmethod
    def record_only(input: Union[Record, File], file_refusal: str = "this preprocessor reads records, not raw files") -> Record:
        """The record as a dict, for preprocessors that read records only: a raw file is refused
        as unsupported with `file_refusal`, a record that is not a JSON object is invalid input."""
        if isinstance(input, File):
            raise Unsupported(file_refusal)
        if not isinstance(input, dict):
            raise InvalidInput("the record is not a JSON object")
        return input


# ---------------------------------------------------------------- prompt builder

ROLES = ("system", "user", "assistant")


@dataclass
class ChatMessage:
    role: str
    content: str

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"chat message role must be one of {', '.join(ROLES)}, not {self.role!r}")


def system(content: str) -> ChatMessage:
    return ChatMessage("system", content)


def user(content: str) -> ChatMessage:
    return ChatMessage("user", content)


def assistant(content: str) -> ChatMessage:
    return ChatMessage("assistant", content)


@dataclass
class Prompt:
    """What to send. `messages` holds `ChatMessage`s (or `{"role": ..., "content": ...}` dicts);
    `None` fields keep the task's model settings; `response_schema` is a JSON Schema dict, sent
    as `response_format: {"type": "json_schema", "json_schema": {"name": "verdict", "schema": ...}}`.
    `strict=True` (or `False`) adds `strict` to it (a provider that supports it then holds the
    reply to the schema exactly); `schema_name` replaces `verdict`."""

    messages: List[Union[ChatMessage, Dict[str, str]]]
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    stop: List[str] = field(default_factory=list)
    response_schema: Optional[Dict[str, Any]] = None
    strict: Optional[bool] = None
    schema_name: Optional[str] = None


class PromptBuilder(Plugin):
    """A record (a dict) in; a `Prompt` out."""

    _role = "prompt-builder"

    def build(self, ctx: Context, record: Record) -> Prompt:
        raise NotImplementedError("a PromptBuilder must implement build(self, ctx, record)")


# ---------------------------------------------------------------- score parser


@dataclass
class Score:
    """The verdict: `value` is the headline score; `extra` (a dict) holds every verdict field,
    merged by the host into the output row."""

    value: float
    label: Optional[str] = None
    rationale: Optional[str] = None
    extra: Optional[Dict[str, Any]] = None


class ScoreParser(Plugin):
    """The record (a dict) and the model's final answer in; a `Score`, `Retry(hint)` or `Invalid(message)` out."""

    _role = "score-parser"

    def parse(self, ctx: Context, record: Record, completion: str):
        raise NotImplementedError("a ScoreParser must implement parse(self, ctx, record, completion)")
