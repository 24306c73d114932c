"""A prompt builder: a system message and one user turn asking for a JSON verdict on the
record's text, cut to a token budget with the host's o200k_base tokenizer.

Config (all optional):
    field: text                 # the record field to judge
    max_input_tokens: 2000      # the text is cut to this many tokens
    system: "..."               # the system message
    max_tokens: 256             # per-request overrides
    temperature: 0.0
    structured_output: false    # also send the verdict's JSON Schema as the response schema
"""

from modelcall_plugin import InvalidConfig, InvalidInput, Prompt, PromptBuilder, count_tokens, register, system, truncate_tokens, user

DEFAULT_SYSTEM = (
    "You assess English text for a language-model training corpus. Reward clear, informative, "
    "well-formed prose; penalise spam, boilerplate, machine-translated or toxic text."
)

INSTRUCTION = (
    'Return one JSON object:\n```json\n{{"score": 3, "label": "general", "rationale": "one sentence"}}\n```\n'
    "where score is 1 (discard) to 5 (excellent)."
)

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "label": {"type": "string"},
        "rationale": {"type": "string"},
    },
    "required": ["score"],
}


@register
class QualityPrompt(PromptBuilder):
    name = "python-quality-prompt"
    version = "0.1.0"

    def __init__(self, config):
        self.field = config.get("field", "text")
        self.max_input_tokens = config.get("max_input_tokens", 2000)
        if not isinstance(self.max_input_tokens, int) or self.max_input_tokens < 1:
            raise InvalidConfig(f"max_input_tokens must be a positive integer, got {self.max_input_tokens!r}")
        self.system = config.get("system", DEFAULT_SYSTEM)
        self.max_tokens = config.get("max_tokens")
        self.temperature = config.get("temperature")
        self.structured_output = bool(config.get("structured_output", False))

    def build(self, ctx, record):
        text = record.get(self.field)
        if not isinstance(text, str):
            raise InvalidInput(f"record {ctx.record_id} has no string field `{self.field}`")
        cut = truncate_tokens(text, self.max_input_tokens)
        note = "" if len(cut) == len(text) else f"\n[text cut to {self.max_input_tokens} of {count_tokens(text)} tokens]"
        return Prompt(
            messages=[system(self.system), user(f'Text:\n"""\n{cut}\n"""{note}\n\n{INSTRUCTION}')],
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            response_schema=VERDICT_SCHEMA if self.structured_output else None,
        )
