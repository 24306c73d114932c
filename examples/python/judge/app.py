"""A score parser: reads the JSON verdict at the end of the model's answer.

The verdict is the last ```json fenced block of the reply, else its last balanced {...}
object. Its `score_key` (default "score") must be a number within [min_score, max_score];
otherwise the model is asked again with a hint saying what was wrong. Every key of the
verdict is kept in `extra`, which the host merges into the output row.

Config (all optional):
    score_key: score       # the headline score
    label_key: label       # copied to Score.label when present
    rationale_key: rationale
    min_score: 1
    max_score: 5
"""

import json
import re

from modelcall_plugin import InvalidConfig, Retry, Score, ScoreParser, log, register

FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


def last_object(text):
    """The last balanced {...} in `text` that parses as a JSON object, or None."""
    end = text.rfind("}")
    while end != -1:
        depth = 0
        for start in range(end, -1, -1):
            c = text[start]
            if c == "}":
                depth += 1
            elif c == "{":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start : end + 1])
                    except ValueError:
                        break
                    if isinstance(value, dict):
                        return value
                    break
        end = text.rfind("}", 0, end)
    return None


def verdict_of(completion):
    blocks = FENCE.findall(completion)
    if blocks:
        try:
            value = json.loads(blocks[-1])
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
    return last_object(completion)


@register
class JsonJudge(ScoreParser):
    name = "python-json-judge"
    version = "0.1.0"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "score_key": {"type": "string"},
            "label_key": {"type": "string"},
            "rationale_key": {"type": "string"},
            "min_score": {"type": "number"},
            "max_score": {"type": "number"},
        },
    }

    def __init__(self, config):
        unknown = set(config) - set(self.config_schema["properties"])
        if unknown:
            raise InvalidConfig(f"unknown config key(s): {', '.join(sorted(unknown))}")
        self.score_key = config.get("score_key", "score")
        self.label_key = config.get("label_key", "label")
        self.rationale_key = config.get("rationale_key", "rationale")
        self.min_score = config.get("min_score", 1)
        self.max_score = config.get("max_score", 5)
        if not self.min_score <= self.max_score:
            raise InvalidConfig(f"min_score ({self.min_score}) is above max_score ({self.max_score})")

    def parse(self, ctx, record, completion):
        key = self.score_key
        verdict = verdict_of(completion)
        if verdict is None:
            return Retry(f'Reply with one JSON object holding a numeric "{key}", e.g. {{"{key}": 3}}.')
        score = verdict.get(key)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            return Retry(f'"{key}" must be a number between {self.min_score} and {self.max_score}, got {json.dumps(score)}.')
        if not self.min_score <= score <= self.max_score:
            return Retry(f'"{key}" must be between {self.min_score} and {self.max_score}, got {score}.')
        if ctx.attempt > 1:
            log("info", f"valid verdict on attempt {ctx.attempt}")
        label = verdict.get(self.label_key)
        rationale = verdict.get(self.rationale_key)
        return Score(
            value=float(score),
            label=None if label is None else str(label),
            rationale=None if rationale is None else str(rationale),
            extra=verdict,
        )
