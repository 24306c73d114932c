"""Write modelcall plugins in Python, built into WebAssembly components with componentize-py.

One base class per kind (`Preprocessor`, `PromptBuilder`, `ScoreParser`) and `register`,
which wires a subclass to the bindings componentize-py generates from `wit/plugin.wit`
(package `modelcall:plugin@0.2.0`)::

    from modelcall_plugin import ScoreParser, Score, Retry, register

    @register
    class Judge(ScoreParser):
        def parse(self, ctx, record, completion):
            verdict = json.loads(completion)
            return Score(verdict["score"], extra=verdict)

Records, configs, `extra` and response schemas are plain dicts (the package does the JSON).
"""

from ._errors import Internal, Invalid, InvalidConfig, InvalidInput, PluginError, Retry, Unsupported
from ._glue import describe_exception, register
from ._host import Context, count_tokens, in_component, log, truncate_tokens
from ._roles import (
    ChatMessage,
    File,
    Keep,
    Plugin,
    Preprocessor,
    Prompt,
    PromptBuilder,
    Score,
    ScoreParser,
    Skip,
    assistant,
    system,
    user,
)

__version__ = "0.2.0"

#: The WIT package this SDK implements (the SDK's version follows its track).
WIT_PACKAGE = "modelcall:plugin@0.2.0"

__all__ = [
    "ChatMessage", "Context", "File", "Internal", "Invalid", "InvalidConfig", "InvalidInput", "Keep", "Plugin",
    "PluginError", "Preprocessor", "Prompt", "PromptBuilder", "Retry", "Score", "ScoreParser", "Skip", "Unsupported",
    "WIT_PACKAGE", "assistant", "count_tokens", "describe_exception", "in_component", "log", "register", "system",
    "truncate_tokens", "user",
]
