"""Native tests of the SDK: the glue runs against the bindings componentize-py generates for
each world (skipped when componentize-py is not installed), with the host functions replaced
by stand-ins. Run from plugins/sdk-python: `python -m unittest discover -s tests`."""

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
WIT = os.path.join(SDK, "..", "..", "wit")
sys.path.insert(0, SDK)


def purge():
    for name in list(sys.modules):
        if name.split(".")[0] in ("wit_world", "componentize_py_types", "modelcall_plugin"):
            del sys.modules[name]


def native_sdk():
    """The SDK with no bindings importable: the native stand-ins."""
    purge()
    return importlib.import_module("modelcall_plugin")


def fresh_sdk(world):
    """The SDK imported over freshly generated bindings for `world` (None without componentize-py)."""
    exe = shutil.which("componentize-py")
    if exe is None:
        return None
    out = tempfile.mkdtemp(prefix="mcp-bindings-")
    subprocess.run([exe, "-d", WIT, "-w", world, "bindings", out], check=True, capture_output=True)
    purge()
    sys.path.insert(0, out)
    try:
        host = importlib.import_module("wit_world.imports.host")
        host.log = lambda level, message: None
        host.count_tokens = lambda text: len(text.split())
        host.truncate_tokens = lambda text, n: " ".join(text.split()[:n])
        return importlib.import_module("modelcall_plugin")
    finally:
        sys.path.remove(out)


class FakeContext:
    def task_name(self):
        return "t"

    def record_id(self):
        return "rec-1"

    def attempt(self):
        return 2


class NativeHostTest(unittest.TestCase):
    def test_stand_ins_and_context(self):
        mp = native_sdk()
        self.assertFalse(mp.in_component())
        self.assertGreater(mp.count_tokens("hello world"), 0)
        self.assertEqual(mp.truncate_tokens("short", 100), "short")

    def test_a_text_that_surely_fits_makes_no_host_call(self):
        mp = fresh_sdk("prompt-builder-plugin")
        if mp is None:
            self.skipTest("componentize-py not installed")
        host = importlib.import_module("wit_world.imports.host")
        calls = []
        host.truncate_tokens = lambda text, n: calls.append(n) or text[:n]
        # At most `max_tokens` UTF-8 bytes: whole, without asking the host.
        self.assertEqual(mp.truncate_tokens("a" * 100, 100), "a" * 100)
        self.assertEqual(mp.truncate_tokens("é" * 50, 100), "é" * 50)
        self.assertEqual(calls, [])
        # More bytes than tokens allowed: the host decides.
        self.assertEqual(mp.truncate_tokens("é" * 60, 100), "é" * 60)
        self.assertEqual(mp.truncate_tokens("a" * 101, 100), "a" * 100)
        self.assertEqual(calls, [100, 100])
        ctx = mp.Context.for_test("task", "r9", 3)
        self.assertEqual((ctx.task_name, ctx.record_id, ctx.attempt), ("task", "r9", 3))
        with self.assertRaises(ValueError):
            mp.log("loud", "x")


class GlueTest(unittest.TestCase):
    def register(self, mp, cls):
        scope = {"register": mp.register, "cls": cls}
        exec("register(cls)", scope)
        return scope

    def test_score_parser(self):
        mp = fresh_sdk("score-parser-plugin")
        if mp is None:
            self.skipTest("componentize-py not installed")
        from componentize_py_types import Err
        from wit_world.exports import score_parser as wsp
        from wit_world.imports import types as wt

        class Judge(mp.ScoreParser):
            name = "j"
            config_schema = {"type": "object"}

            def __init__(self, config):
                if "bad" in config:
                    raise mp.InvalidConfig("`bad` is not a key")
                self.config = config

            def parse(self, ctx, record, completion):
                if completion == "retry":
                    return mp.Retry("again")
                if completion == "raise":
                    raise KeyError("missing")
                if completion == "nan":
                    return mp.Score(float("nan"))
                return mp.Score(1.5, label="x", extra={"ctx": [ctx.task_name, ctx.record_id, ctx.attempt], "rec": record})

        scope = self.register(mp, Judge)
        export = scope["ScoreParser"]()
        info = export.init("{}")
        self.assertEqual((info.name, info.version, json.loads(info.config_schema)), ("j", "0.0.0", {"type": "object"}))
        with self.assertRaises(Err) as e:
            export.init('{"bad": 1}')
        self.assertEqual(e.exception.value.kind, wt.ErrorKind.INVALID_CONFIG)
        export.init("{}")
        s = export.parse(FakeContext(), '{"id": 7}', "ok")
        self.assertEqual(s.value, 1.5)
        self.assertEqual(json.loads(s.extra), {"ctx": ["t", "rec-1", 2], "rec": {"id": 7}})
        with self.assertRaises(Err) as e:
            export.parse(FakeContext(), "{}", "retry")
        self.assertEqual(e.exception.value, wsp.ParseError_Retry("again"))
        with self.assertRaises(Err) as e:
            export.parse(FakeContext(), "{}", "raise")
        self.assertIsInstance(e.exception.value, wsp.ParseError_Failed)
        failed = e.exception.value.value
        self.assertEqual(failed.kind, wt.ErrorKind.INTERNAL)
        self.assertTrue(failed.message.startswith("KeyError: 'missing'"), failed.message)
        self.assertIn("Traceback (most recent call last)", failed.message)
        with self.assertRaises(Err) as e:
            export.parse(FakeContext(), "{}", "nan")
        self.assertIn("not a finite number", e.exception.value.value.message)
        with self.assertRaises(Err) as e:
            export.parse(FakeContext(), "not json", "ok")
        self.assertEqual(e.exception.value.value.kind, wt.ErrorKind.INVALID_INPUT)
        self.assertIn("record is not JSON", e.exception.value.value.message)

    def test_config_is_held_to_its_schema(self):
        mp = fresh_sdk("score-parser-plugin")
        if mp is None:
            self.skipTest("componentize-py not installed")
        from componentize_py_types import Err
        from wit_world.imports import types as wt

        schema = {
            "type": "object",
            "properties": {"key": {"type": "string"}, "max": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "additionalProperties": False,
        }
        seen = []

        class Judge(mp.ScoreParser):
            config_schema = schema

            def __init__(self, config):
                seen.append(config)

            def parse(self, ctx, record, completion):
                return mp.Score(1)

        export = self.register(mp, Judge)["ScoreParser"]()
        export.init('{"key": "s", "max": 3, "tags": ["a"]}')
        self.assertEqual(len(seen), 1)
        for config, problem in [
            ('{"kye": "s"}', "`kye`: unknown key; the schema allows: key, max, tags"),
            ('{"max": "five"}', "`max`: expected integer, got string"),
            ('{"max": true}', "`max`: expected integer, got boolean"),
            ('{"tags": ["a", 3]}', "`tags.1`: expected string, got integer"),
        ]:
            with self.assertRaises(Err) as e:
                export.init(config)
            err = e.exception.value
            self.assertEqual(err.kind, wt.ErrorKind.INVALID_CONFIG, config)
            self.assertIn(problem, err.message)
            # The schema follows, for the host to place each violation in the YAML.
            first, mark, rest = err.message.partition("\nconfig schema: ")
            self.assertEqual(json.loads(rest), schema, err.message)
        self.assertEqual(len(seen), 1, "__init__ never sees a config its schema refuses")

        # Without a schema (or one allowing extra keys) anything goes, as before.
        class Open(mp.ScoreParser):
            config_schema = {"type": "object", "properties": {"key": {"type": "string"}}}

            def parse(self, ctx, record, completion):
                return mp.Score(1)

        self.register(mp, Open)["ScoreParser"]().init('{"other": 1}')

    def test_item_errors_at_a_line(self):
        mp = native_sdk()
        e = mp.InvalidInput("3 fields, not 4").at_line(7)
        self.assertEqual((e.location, e.kind), ("line 7", "invalid-input"))

    def test_preprocessor(self):
        mp = fresh_sdk("preprocessor-plugin")
        if mp is None:
            self.skipTest("componentize-py not installed")
        from componentize_py_types import Err, Ok
        from wit_world.exports import preprocessor as wp
        from wit_world.imports import types as wt

        class Pre(mp.Preprocessor):
            def process(self, ctx, input):
                if isinstance(input, mp.File):
                    return mp.Keep({"path": input.path, "n": len(input.data)})
                if input.get("split"):
                    return mp.Keep([{"a": 1}, {"b": 2}])
                if input.get("rows"):
                    return mp.Keep({"a": 1}, mp.InvalidInput("row 2 has no text").at("line 2"), {"c": 3})
                if input.get("fail"):
                    raise mp.InvalidInput("no")
                if input.get("wrong"):
                    return {"not": "an outcome"}
                if input.get("deep"):
                    1 / 0
                return mp.Skip("nothing")

        scope = self.register(mp, Pre)
        export = scope["Preprocessor"]()
        export.init("")
        out = export.process(FakeContext(), wp.Input_File(wp.RawFile("a.txt", b"abc")))
        self.assertEqual(out, wp.Outcome_Keep([Ok('{"path":"a.txt","n":3}')]))
        out = export.process(FakeContext(), wp.Input_Record('{"split": true}'))
        self.assertEqual(out, wp.Outcome_Keep([Ok('{"a":1}'), Ok('{"b":2}')]))
        out = export.process(FakeContext(), wp.Input_Record('{"rows": true}'))
        bad = wp.ItemError(kind=wt.ErrorKind.INVALID_INPUT, message="row 2 has no text", location="line 2")
        self.assertEqual(out, wp.Outcome_Keep([Ok('{"a":1}'), Err(bad), Ok('{"c":3}')]))
        self.assertEqual(export.process(FakeContext(), wp.Input_Record("{}")), wp.Outcome_Skip("nothing"))
        for rec, kind, text in [
            ('{"fail": 1}', wt.ErrorKind.INVALID_INPUT, "no"),
            ('{"wrong": 1}', wt.ErrorKind.INTERNAL, "return Keep(...) or Skip(reason)"),
            ('{"deep": 1}', wt.ErrorKind.INTERNAL, "ZeroDivisionError"),
        ]:
            with self.assertRaises(Err) as e:
                export.process(FakeContext(), wp.Input_Record(rec))
            self.assertEqual(e.exception.value.kind, kind)
            self.assertIn(text, e.exception.value.message)

    def test_prompt_builder(self):
        mp = fresh_sdk("prompt-builder-plugin")
        if mp is None:
            self.skipTest("componentize-py not installed")
        from wit_world.imports import types as wt

        class Build(mp.PromptBuilder):
            def build(self, ctx, record):
                return mp.Prompt(
                    [mp.system("s"), {"role": "user", "content": record["text"]}],
                    max_tokens=10,
                    stop=["x"],
                    response_schema={"type": "object"},
                )

        scope = self.register(mp, Build)
        export = scope["PromptBuilder"]()
        export.init("{}")
        p = export.build(FakeContext(), '{"text": "hi"}')
        self.assertEqual([(m.role, m.content) for m in p.messages], [(wt.Role.SYSTEM, "s"), (wt.Role.USER, "hi")])
        self.assertEqual((p.max_tokens, p.temperature, p.stop, p.response_schema), (10, None, ["x"], '{"type":"object"}'))

        # `strict` (and `schema_name`) send the whole json_schema object.
        class Strict(mp.PromptBuilder):
            def build(self, ctx, record):
                return mp.Prompt([mp.user("hi")], response_schema={"type": "object"}, strict=True, schema_name=record.get("name"))

        export = self.register(mp, Strict)["PromptBuilder"]()
        export.init("{}")
        p = export.build(FakeContext(), "{}")
        self.assertEqual(json.loads(p.response_schema), {"name": "verdict", "strict": True, "schema": {"type": "object"}})
        p = export.build(FakeContext(), '{"name": "judgement"}')
        self.assertEqual(json.loads(p.response_schema)["name"], "judgement")

    def test_long_tracebacks_keep_their_end(self):
        native_sdk()
        from modelcall_plugin._glue import MAX_MESSAGE_BYTES, _fit

        text = "ValueError: first line\n" + "frame\n" * 2000 + "ValueError: the end"
        fitted = _fit(text)
        self.assertLessEqual(len(fitted.encode()), MAX_MESSAGE_BYTES)
        self.assertTrue(fitted.startswith("ValueError: first line\n… ["), fitted[:80])
        self.assertTrue(fitted.endswith("ValueError: the end"))

    def test_fast_json_matches_the_standard_functions(self):
        """The per-call JSON fast paths give what json.dumps/json.loads give, errors included."""
        native_sdk()
        from modelcall_plugin._glue import _dumps, _loads

        def std_dumps(v):
            return json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

        values = [
            {"score": 4, "label": "général", "tags": ["a", "b"], "nested": {"x": [1, 2.5, None, True, False]}},
            {1: "int key", 2.5: "float key", True: "bool key", None: "null key"},
            [], {}, "a \"quoted\" string\n", 3, -0.0, 1e300, "ünï", ("tuple", 1),
        ]
        for v in values:
            self.assertEqual(_dumps(v), std_dumps(v), v)
        for bad in [float("nan"), {"x": float("inf")}, {"x": object()}, {("tuple",): 1}]:
            with self.assertRaises(Exception) as ours:
                _dumps(bad)
            with self.assertRaises(Exception) as std:
                std_dumps(bad)
            self.assertEqual((type(ours.exception), str(ours.exception)), (type(std.exception), str(std.exception)), bad)
        cycle = []
        cycle.append(cycle)
        with self.assertRaisesRegex(ValueError, "Circular reference"):
            _dumps(cycle)
        self.assertEqual(_dumps({"after": "a failed call"}), '{"after":"a failed call"}')

        for text in ['{"id": 7, "text": "é\\u00e9"}', "[1, 2]", '"s"', "3", "null", " {\"a\": 1} ", '{"a": 1}\n', "1e400"]:
            self.assertEqual(_loads(text), json.loads(text), text)
        for bad in ["", "not json", '{"a": 1} x', '{"a": }', "[1,", "\ufeff{}", "NaN x", '{"a": 1}{"b": 2}']:
            with self.assertRaises(ValueError) as ours:
                _loads(bad)
            with self.assertRaises(ValueError) as std:
                json.loads(bad)
            self.assertEqual(str(ours.exception), str(std.exception), bad)


if __name__ == "__main__":
    unittest.main()
