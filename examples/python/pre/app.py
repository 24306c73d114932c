"""A preprocessor: keeps the records whose `text` is a non-empty string (after stripping
whitespace) and skips the others with a reason counted in the task report. Raw files are
refused as unsupported.

Config (all optional):
    field: text                 # the field that must be non-empty
    add_token_count: false      # add `<field>_tokens` (o200k_base) to each kept record
"""

from modelcall_plugin import Keep, Preprocessor, Skip, count_tokens, register


@register
class NonEmptyText(Preprocessor):
    name = "python-non-empty-text"
    version = "0.1.0"

    def __init__(self, config):
        self.field = config.get("field", "text")
        self.add_token_count = bool(config.get("add_token_count", False))

    def process(self, ctx, input):
        record = self.record_only(input, "python-non-empty-text reads records, not raw files")
        text = record.get(self.field)
        if not isinstance(text, str) or not text.strip():
            return Skip(f"empty {self.field}")
        if self.add_token_count:
            record[f"{self.field}_tokens"] = count_tokens(text)
        return Keep(record)
