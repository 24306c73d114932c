"""Wiring a plugin class to the bindings componentize-py generates (`wit_world`).

componentize-py builds the component from a module (`app` in `componentize app`) and looks in
it for a class named after the world's export: `Preprocessor`, `PromptBuilder` or
`ScoreParser`. `register` defines that class in the caller's module; it converts JSON text
to dicts and back, lends the call context, and turns every exception into a result the host
understands (never a trap), with the Python traceback in the message.
"""

from __future__ import annotations

import gc
import json
import math
import sys
import traceback

from ._errors import Internal, Invalid, InvalidConfig, InvalidInput, PluginError, Retry
from ._host import Context
from ._roles import ChatMessage, File, Keep, Plugin, Preprocessor, Prompt, PromptBuilder, Score, ScoreParser, Skip

# The host cuts `plugin-error`, `retry` and `invalid` messages past 4 KiB (keeping the start);
# a traceback's useful end must survive, so messages are fitted below that here.
MAX_MESSAGE_BYTES = 4000

_EXPORT_NAMES = {Preprocessor: "Preprocessor", PromptBuilder: "PromptBuilder", ScoreParser: "ScoreParser"}

# The instance `init` built, per kind (one component exports one kind).
_instances = {}


# Per-call JSON: records in, `extra`/records/schemas out. Inside a component every bytecode
# counts (CPython runs as WebAssembly, ~5x slower than native), so the hot paths skip what
# `json.dumps(value, **options)` and `json.loads` redo on each call (a new `JSONEncoder`, the
# whitespace regexes) and go straight to the C accelerators; what they produce, and every
# error they raise, is the same (errors come from the standard functions, on a second try).
try:
    from json.encoder import c_make_encoder as _c_make_encoder, encode_basestring as _encode_str
except ImportError:  # pragma: no cover - a CPython without `_json`
    _c_make_encoder = None
_default = json.JSONEncoder().default  # raises "Object of type X is not JSON serializable"
_scan_once = json.JSONDecoder().scan_once


def _dumps(value) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`."""
    if _c_make_encoder is None or isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # As `JSONEncoder.iterencode` builds it for these options, with a fresh circular-reference map.
    return "".join(_c_make_encoder({}, _default, _encode_str, None, ":", ",", False, False, False)(value, 0))


def _loads(text: str):
    """`json.loads(text)` for a str: one C scan when the text is a single JSON value without
    surrounding whitespace (what the host sends); anything else through `json.loads`."""
    try:
        value, end = _scan_once(text, 0)
    except Exception:  # invalid, or leading whitespace: json.loads decides (and words the error)
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _fit(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`text` within `limit` UTF-8 bytes: its first line and as much of its end as fits."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    first, _, _ = text.partition("\n")
    first = first.encode("utf-8")[:400].decode("utf-8", "ignore")
    marker = f"\n… [{len(data)} bytes in all; the middle is cut] …\n"
    room = limit - len(first.encode("utf-8")) - len(marker.encode("utf-8"))
    tail = data[len(data) - room :].decode("utf-8", "ignore")
    return first + marker + tail


def describe_exception(exc: BaseException) -> str:
    """`ExcType: message`, then the Python traceback, fitted to the host's message cap."""
    head = f"{type(exc).__name__}: {exc}"
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:  # formatting must never be what fails
        tb = ""
    return _fit(f"{head}\n{tb}".rstrip("\n"))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, PluginError):
        return _fit(exc.message)
    return describe_exception(exc)


#: What precedes the config schema in an invalid-config message (as the Rust SDK writes it):
#: the host reads the schema there and reports each violation at its line of the YAML.
SCHEMA_MARK = "config schema: "

_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def _type_name(v) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _JSON_TYPES[name](v):
            return name
    return type(v).__name__


def config_problems(config, schema) -> list:
    """What in `config` breaks the plugin's `config_schema`, for the keywords a config schema
    uses: `type`, `properties`, `required`, `additionalProperties` (`False`: unknown keys are
    refused, as serde's `deny_unknown_fields` does in the Rust SDK), `items`, `enum`.
    Each problem names its dotted key (`max`, `checks.score.min`)."""
    problems = []

    def walk(value, sch, path):
        if not isinstance(sch, dict):
            return
        where = path or "config"
        expected = sch.get("type")
        if expected is not None:
            names = expected if isinstance(expected, list) else [expected]
            if not any(_JSON_TYPES.get(n, lambda v: True)(value) for n in names):
                problems.append(f"`{where}`: expected {' or '.join(names)}, got {_type_name(value)}")
                return
        if "enum" in sch and isinstance(sch["enum"], list) and value not in sch["enum"]:
            problems.append(f"`{where}`: {json.dumps(value)} is not one of {json.dumps(sch['enum'])}")
        if isinstance(value, dict):
            props = sch.get("properties") if isinstance(sch.get("properties"), dict) else {}
            for name in sch.get("required") or []:
                if name not in value:
                    problems.append(f"`{where}`: missing required key `{name}`")
            extra = sch.get("additionalProperties", True)
            for key, v in value.items():
                sub = f"{path}.{key}" if path else str(key)
                if key in props:
                    walk(v, props[key], sub)
                elif extra is False:
                    allowed = ", ".join(props) if props else "no other keys"
                    problems.append(f"`{sub}`: unknown key; the schema allows: {allowed}")
                elif isinstance(extra, dict):
                    walk(v, extra, sub)
        elif isinstance(value, list) and isinstance(sch.get("items"), dict):
            for i, item in enumerate(value):
                walk(item, sch["items"], f"{where}.{i}")

    walk(config, schema, "")
    return problems


def _with_schema(exc: BaseException, schema) -> BaseException:
    """An invalid-config error with the plugin's schema after a line `config schema: `."""
    if schema is not None and isinstance(exc, InvalidConfig) and SCHEMA_MARK not in exc.message:
        text = schema if isinstance(schema, str) else _dumps(schema)
        exc.message = f"{exc.message}\n{SCHEMA_MARK}{text}"
    return exc


def flush_output():
    """Pushes what the plugin printed to the host, which shows it with the call (`plugin run`,
    the run's log at debug): a component's stdout is not a terminal, so Python buffers it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # a closed or replaced stream must not fail the call
            pass


def _kind_of(exc: BaseException) -> str:
    return exc.kind if isinstance(exc, PluginError) else "internal"


def register(cls):
    """Registers a subclass of `Preprocessor`, `PromptBuilder` or `ScoreParser` as the
    component's implementation. Use it as a class decorator (or call it) in the module given
    to `componentize-py ... componentize <module>`; it defines the export class componentize-py
    looks for (`ScoreParser` etc.) in that module and returns `cls` unchanged."""
    if not isinstance(cls, type) or not issubclass(cls, Plugin):
        raise TypeError(f"register() takes a subclass of Preprocessor, PromptBuilder or ScoreParser, not {cls!r}")
    base = next((b for b in _EXPORT_NAMES if issubclass(cls, b)), None)
    if base is None:
        raise TypeError(f"{cls.__name__} must subclass Preprocessor, PromptBuilder or ScoreParser")
    export = _make_export(cls, base)
    caller = sys._getframe(1).f_globals
    caller[_EXPORT_NAMES[base]] = export
    return cls


def _make_export(cls, base):
    # Imported here: `wit_world` exists only inside a componentize-py build (and in tests).
    from componentize_py_types import Err
    import wit_world.exports as wit_exports
    from wit_world.imports import types as wt

    kinds = {
        "invalid-input": wt.ErrorKind.INVALID_INPUT,
        "invalid-config": wt.ErrorKind.INVALID_CONFIG,
        "unsupported": wt.ErrorKind.UNSUPPORTED,
        "internal": wt.ErrorKind.INTERNAL,
    }

    def plugin_error(exc: BaseException):
        return Err(wt.PluginError(kind=kinds.get(_kind_of(exc), wt.ErrorKind.INTERNAL), message=_error_text(exc)))

    def init(self, config: str):
        try:
            cfg = json.loads(config) if config.strip() else {}
        except ValueError as e:
            raise Err(wt.PluginError(kind=wt.ErrorKind.INVALID_CONFIG, message=f"config is not JSON: {e}"))
        schema = cls.config_schema
        try:
            # The published schema holds before the plugin sees its config: unknown keys (when
            # the schema forbids them), wrong types and missing keys are refused, as the Rust
            # SDK's serde does.
            parsed = json.loads(schema) if isinstance(schema, str) else schema
            problems = config_problems(cfg, parsed) if isinstance(parsed, dict) else []
            if problems:
                raise InvalidConfig("config: " + "; ".join(problems))
            instance = cls(cfg)
            info = wt.PluginInfo(
                name=str(cls.name or cls.__name__),
                version=str(cls.version),
                config_schema=None if schema is None else (schema if isinstance(schema, str) else _dumps(schema)),
            )
        except BaseException as e:
            raise plugin_error(_with_schema(e, schema))
        finally:
            flush_output()
        _instances[base] = instance
        if sys.platform == "wasi":
            # Everything alive now (CPython's snapshot of the stdlib and the plugin's modules,
            # ~13,000 objects, and the instance) lives as long as the component instance: out
            # of the collector's sight, a collection during a call scans only what calls
            # allocate (a full one took 3-10 ms inside a component, the p99 of a call).
            gc.freeze()
        return info

    def instance():
        try:
            return _instances[base]
        except KeyError:
            raise Internal("called before init") from None

    def record(text: str):
        try:
            return _loads(text)
        except ValueError as e:
            raise InvalidInput(f"record is not JSON: {e}") from None

    if base is Preprocessor:
        from componentize_py_types import Ok
        from wit_world.exports import preprocessor as wp

        def item(r):
            """One item of a `Keep`: a record, or a `PluginError` standing in for one."""
            if isinstance(r, PluginError):
                kind = kinds.get(r.kind, wt.ErrorKind.INTERNAL)
                return Err(wp.ItemError(kind=kind, message=_fit(r.message), location=r.location))
            return Ok(_dumps(r))

        # Each call: what the plugin raises becomes the contract's error (its traceback kept),
        # and the call context is released, whatever happens. (Written out rather than as a
        # context manager: one generator and one manager object fewer per call.)
        def process(self, ctx, input):
            c = Context(ctx)
            try:
                if isinstance(input, wp.Input_File):
                    value = File(path=input.value.path, data=bytes(input.value.bytes))
                else:
                    value = record(input.value)
                out = instance().process(c, value)
                if isinstance(out, Keep):
                    return wp.Outcome_Keep(value=[item(r) for r in out.records])
                if isinstance(out, Skip):
                    return wp.Outcome_Skip(value=out.reason)
                raise Internal(f"{cls.__name__}.process returned {type(out).__name__}; return Keep(...) or Skip(reason)")
            except Err:
                raise
            except BaseException as e:
                raise plugin_error(e)
            finally:
                c._release()
                flush_output()

        methods = {"init": init, "process": process}

    elif base is PromptBuilder:
        from wit_world.exports import prompt_builder as wpb

        roles = {"system": wt.Role.SYSTEM, "user": wt.Role.USER, "assistant": wt.Role.ASSISTANT}

        def message(m):
            if isinstance(m, dict):
                m = ChatMessage(m.get("role"), m.get("content"))
            if not isinstance(m, ChatMessage):
                raise Internal(f"a prompt message must be a ChatMessage or a {{role, content}} dict, not {type(m).__name__}")
            if not isinstance(m.content, str):
                raise Internal(f"a prompt message's content must be a str, not {type(m.content).__name__}")
            return wt.ChatMessage(role=roles[m.role], content=m.content)

        def build(self, ctx, record_json):
            c = Context(ctx)
            try:
                p = instance().build(c, record(record_json))
                if not isinstance(p, Prompt):
                    raise Internal(f"{cls.__name__}.build returned {type(p).__name__}; return Prompt(messages, ...)")
                schema = p.response_schema
                if schema is not None and (p.strict is not None or p.schema_name is not None):
                    # The whole `json_schema` object: the host sends its `strict` and `name`.
                    inner = json.loads(schema) if isinstance(schema, str) else schema
                    schema = {"name": str(p.schema_name or "verdict"), "schema": inner}
                    if p.strict is not None:
                        schema["strict"] = bool(p.strict)
                return wpb.Prompt(
                    messages=[message(m) for m in p.messages],
                    max_tokens=None if p.max_tokens is None else int(p.max_tokens),
                    temperature=None if p.temperature is None else float(p.temperature),
                    stop=[str(s) for s in p.stop] if p.stop else [],
                    response_schema=None if schema is None else (schema if isinstance(schema, str) else _dumps(schema)),
                )
            except Err:
                raise
            except BaseException as e:
                raise plugin_error(e)
            finally:
                c._release()
                flush_output()

        methods = {"init": init, "build": build}

    else:
        from wit_world.exports import score_parser as wsp

        # A score parser answers with a score or a parse-error: `Retry`/`Invalid` say the reply
        # is unusable; a plugin error or any other exception is the parser's own `failed`,
        # with its kind and the Python traceback.
        def parse(self, ctx, record_json, completion):
            c = Context(ctx)
            try:
                out = instance().parse(c, record(record_json), completion)
                if isinstance(out, Score):
                    value = float(out.value)
                    if not math.isfinite(value):
                        raise Internal(f"score value {value!r} is not a finite number")
                    extra = out.extra
                    if extra is not None and not isinstance(extra, (dict, str)):
                        raise Internal(f"Score.extra must be a dict, not {type(extra).__name__}")
                    return wsp.Score(
                        value=value,
                        label=None if out.label is None else str(out.label),
                        rationale=None if out.rationale is None else str(out.rationale),
                        extra=None if extra is None else (extra if isinstance(extra, str) else _dumps(extra)),
                    )
                if isinstance(out, (Retry, Invalid)):
                    raise out
                raise Internal(f"{cls.__name__}.parse returned {type(out).__name__}; return Score(...), Retry(hint) or Invalid(message)")
            except Err:
                raise
            except Retry as r:
                raise Err(wsp.ParseError_Retry(value=_fit(r.hint)))
            except Invalid as i:
                raise Err(wsp.ParseError_Invalid(value=_fit(i.message)))
            except BaseException as e:
                raise Err(wsp.ParseError_Failed(value=plugin_error(e).value))
            finally:
                c._release()
                flush_output()

        methods = {"init": init, "parse": parse}

    protocol = getattr(wit_exports, _EXPORT_NAMES[base], object)
    return type(_EXPORT_NAMES[base], (protocol,), dict(methods, __module__=cls.__module__, __doc__=f"componentize-py export for {cls.__name__}"))
