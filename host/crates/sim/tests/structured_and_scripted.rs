//! Structured output (`response_format: json_schema`) and scripted replies (`replies=FILE`),
//! checked against the `jsonschema` crate and over HTTP.

use std::collections::BTreeSet;
use std::path::PathBuf;

use modelcall_sim::schema::generate;
use modelcall_sim::{SimError, SimOptions, SimUrlError};
use serde_json::{json, Value};

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options().should_validate_formats(true).build(schema).unwrap_or_else(|e| panic!("bad test schema {schema}: {e}"))
}

fn assert_valid(schema: &Value, instance: &Value) {
    let v = validator(schema);
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{instance} is not valid against {schema}: {errors:?}");
}

fn pairwise() -> Value {
    json!({
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": ["A", "B", "tie"]},
            "reason": {"type": "string", "minLength": 10, "maxLength": 200},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["winner", "reason"],
        "additionalProperties": false
    })
}

fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("pairwise", pairwise()),
        (
            "nested objects via $defs",
            json!({
                "type": "object",
                "$defs": {
                    "score": {"type": "integer", "minimum": 1, "maximum": 10},
                    "criterion": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "score": {"$ref": "#/$defs/score"}, "notes": {"type": ["string", "null"]}},
                        "required": ["name", "score", "notes"],
                        "additionalProperties": false
                    }
                },
                "properties": {
                    "overall": {"$ref": "#/$defs/score"},
                    "criteria": {"type": "array", "items": {"$ref": "#/$defs/criterion"}, "minItems": 2, "maxItems": 4},
                    "meta": {"type": "object", "properties": {"model": {"const": "judge-v2"}, "flags": {"type": "object", "properties": {"safe": {"type": "boolean"}}, "required": ["safe"]}}, "required": ["model", "flags"]}
                },
                "required": ["overall", "criteria", "meta", "summary"],
                "additionalProperties": {"type": "string", "maxLength": 40}
            }),
        ),
        (
            "arrays",
            json!({
                "type": "object",
                "properties": {
                    "tags": {"type": "array", "items": {"enum": ["clear", "concise", "wrong", "rude"]}, "minItems": 2, "maxItems": 3, "uniqueItems": true},
                    "exactly_five": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 100}, "minItems": 5, "maxItems": 5},
                    "none": {"type": "array", "maxItems": 0},
                    "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false},
                    "with_contains": {"type": "array", "items": {"type": "integer"}, "contains": {"const": 42}},
                    "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}, "minItems": 1}}
                },
                "required": ["tags", "exactly_five", "none", "pair", "with_contains", "matrix"]
            }),
        ),
        (
            "numeric ranges",
            json!({
                "type": "object",
                "properties": {
                    "score": {"type": "integer", "minimum": 1, "maximum": 5},
                    "neg": {"type": "integer", "exclusiveMinimum": -10, "exclusiveMaximum": -7},
                    "by_sevens": {"type": "integer", "minimum": 10, "maximum": 40, "multipleOf": 7},
                    "big": {"type": "integer", "minimum": 1000000},
                    "small": {"type": "integer", "maximum": -1000},
                    "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    "tenths": {"type": "number", "minimum": 0.05, "maximum": 0.95, "multipleOf": 0.1},
                    "quarters": {"type": "number", "minimum": -1, "maximum": 1, "multipleOf": 0.25},
                    "tiny": {"type": "number", "exclusiveMinimum": 0.001, "exclusiveMaximum": 0.0011},
                    "pinned": {"type": "number", "minimum": 2.5, "maximum": 2.5},
                    "temperature": {"type": "number", "minimum": -273.15}
                },
                "required": ["score", "neg", "by_sevens", "big", "small", "ratio", "tenths", "quarters", "tiny", "pinned", "temperature"]
            }),
        ),
        (
            "combinators, type lists, strings",
            json!({
                "type": "object",
                "properties": {
                    "verdict": {"oneOf": [{"type": "string", "enum": ["pass", "fail"]}, {"type": "integer", "minimum": 0, "maximum": 3}, {"type": "null"}]},
                    "either": {"anyOf": [{"type": "object", "properties": {"kind": {"const": "a"}, "a": {"type": "integer"}}, "required": ["kind", "a"]},
                                         {"type": "object", "properties": {"kind": {"const": "b"}, "b": {"type": "string"}}, "required": ["kind", "b"]}]},
                    "both": {"allOf": [{"type": "object", "properties": {"x": {"type": "integer", "minimum": 3}}, "required": ["x"]},
                                       {"properties": {"x": {"maximum": 4}, "y": {"type": "boolean"}}, "required": ["y"]}]},
                    "maybe": {"type": ["integer", "null"], "minimum": 7, "maximum": 9},
                    "any_scalar": {"type": ["string", "number", "boolean"]},
                    "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
                    "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "minLength": 12},
                    "short": {"type": "string", "maxLength": 3},
                    "long": {"type": "string", "minLength": 80},
                    "when": {"type": "string", "format": "date-time"},
                    "mail": {"type": "string", "format": "email"},
                    "id": {"type": "string", "format": "uuid"},
                    "untyped": {},
                    "anything": true,
                    "fixed": {"const": {"version": 2}}
                },
                "required": ["verdict", "either", "both", "maybe", "any_scalar", "code", "slug", "short", "long", "when", "mail", "id", "untyped", "anything", "fixed"]
            }),
        ),
        (
            "recursive tree",
            json!({
                "$ref": "#/$defs/node",
                "$defs": {"node": {"type": "object", "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["label", "children"]}}
            }),
        ),
        (
            "draft-07 definitions and tuples",
            json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": {"level": {"type": "string", "enum": ["low", "medium", "high"]}, "with/slash": {"type": "integer", "const": 3}},
                "type": "object",
                "properties": {
                    "risk": {"$ref": "#/definitions/level"},
                    "odd": {"$ref": "#/definitions/with~1slash"},
                    "point": {"type": "array", "items": [{"type": "number"}, {"type": "number"}], "additionalItems": false, "minItems": 2},
                    "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
                },
                "required": ["risk", "odd", "point", "ratio"]
            }),
        ),
        ("top-level enum", json!({"enum": ["A", "B", "tie"]})),
        (
            "top-level array",
            json!({"type": "array", "items": {"type": "object", "properties": {"q": {"type": "string"}, "a": {"type": "string"}}, "required": ["q", "a"]}, "minItems": 3}),
        ),
    ]
}

#[test]
fn generated_documents_are_valid_and_deterministic() {
    for (name, schema) in schemas() {
        let v = validator(&schema);
        for h in 0..300u64 {
            let doc = generate(&schema, h.wrapping_mul(0x9E3779B97F4A7C15));
            let errors: Vec<String> = v.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(errors.is_empty(), "{name}, h={h}: {doc} is not valid: {errors:?}");
            assert_eq!(doc, generate(&schema, h.wrapping_mul(0x9E3779B97F4A7C15)), "{name}: not deterministic");
        }
    }
}

#[test]
fn choices_vary_with_the_hash() {
    let schema = pairwise();
    let winners: BTreeSet<String> = (0..60).map(|h| generate(&schema, h)["winner"].as_str().unwrap().to_string()).collect();
    assert_eq!(winners, BTreeSet::from(["A".to_string(), "B".to_string(), "tie".to_string()]));
    let scores: BTreeSet<i64> = (0..60).map(|h| generate(&json!({"type": "integer", "minimum": 1, "maximum": 5}), h).as_i64().unwrap()).collect();
    assert_eq!(scores, (1..=5).collect());
    let nullable: BTreeSet<String> = (0..60).map(|h| generate(&json!({"type": ["string", "null"]}), h).to_string()).collect();
    assert!(!nullable.contains("null"), "a nullable field gets a real value: {nullable:?}");
}

// ---- over HTTP ----

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn content(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let v: Value = client.post(format!("{base}/chat/completions")).json(body).send().await.unwrap().json().await.unwrap();
    v["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("no content in {v}")).to_string()
}

fn judge_request(question: &str, seed_schema: &Value) -> Value {
    json!({
        "model": "judge",
        "messages": [
            {"role": "system", "content": "Compare the answers. Reply as {\"winner\": \"A\"|\"B\"|\"tie\", \"reason\": \"...\"}"},
            {"role": "user", "content": question}
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "strict": true, "schema": seed_schema}}
    })
}

#[tokio::test]
async fn json_schema_requests_get_valid_bare_json() {
    let schema = pairwise();
    let server = modelcall_sim::start(SimOptions::default()).await.unwrap();
    let c = client();
    let base = server.base_url();
    let mut winners = BTreeSet::new();
    for i in 0..30 {
        let body = judge_request(&format!("Question {i}: which answer is better?"), &schema);
        let text = content(&c, &base, &body).await;
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("content is not bare JSON ({e}): {text}"));
        assert_valid(&schema, &doc);
        winners.insert(doc["winner"].as_str().unwrap().to_string());
        // Deterministic: the same request gets the same reply.
        assert_eq!(content(&c, &base, &body).await, text);
    }
    assert_eq!(winners.len(), 3, "{winners:?}");

    // Streaming sends the same document in pieces.
    let mut body = judge_request("Question 1: which answer is better?", &schema);
    let plain = content(&c, &base, &body).await;
    body["stream"] = json!(true);
    let sse = c.post(format!("{base}/chat/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    let streamed: String = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok()?["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(streamed, plain);

    // `json_object` keeps the template behaviour: a fenced object with the prompt's keys.
    let mut body = judge_request("Question 1", &schema);
    body["response_format"] = json!({"type": "json_object"});
    let text = content(&c, &base, &body).await;
    assert!(text.starts_with("```json") && text.contains("\"winner\""), "{text}");
}

#[tokio::test]
async fn the_seed_changes_structured_choices() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 1000000}}, "required": ["n"]});
    let a = modelcall_sim::start(SimOptions::from_url("sim://?seed=1").unwrap()).await.unwrap();
    let b = modelcall_sim::start(SimOptions::from_url("sim://?seed=2").unwrap()).await.unwrap();
    let c = client();
    let body = judge_request("Same question", &schema);
    let (x, y) = (content(&c, &a.base_url(), &body).await, content(&c, &b.base_url(), &body).await);
    assert_ne!(x, y);
    assert_eq!(x, content(&c, &a.base_url(), &body).await);
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("modelcall-sim-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn scripted_replies_from_a_file() {
    let path = temp_file(
        "replies.jsonl",
        concat!(
            "{\"match\": \"(?i)capital of france\", \"reply\": \"Paris.\"}\n",
            "{\"match\": \"\\\\brec-0042\\\\b\", \"reply\": {\"winner\": \"B\", \"reason\": \"scripted for rec-0042\"}}\n",
            "\n",
            "{\"default\": \"No script for this.\"}\n",
        ),
    );
    let url = format!("sim://?replies={}&seed=3", path.display().to_string().replace('%', "%25").replace('&', "%26"));
    let opts = SimOptions::from_url(&url).unwrap();
    assert_eq!(opts.replies.as_deref(), Some(path.as_path()));
    let server = modelcall_sim::start(opts).await.unwrap();
    let c = client();
    let base = server.base_url();
    let ask = |q: &str| json!({"model": "m", "messages": [{"role": "user", "content": q}]});
    assert_eq!(content(&c, &base, &ask("What is the capital of FRANCE?")).await, "Paris.");
    // A JSON value reply is serialised, and a rule wins over the request's schema.
    let scripted = content(&c, &base, &judge_request("Record rec-0042: A or B?", &pairwise())).await;
    assert_eq!(serde_json::from_str::<Value>(&scripted).unwrap(), json!({"winner": "B", "reason": "scripted for rec-0042"}));
    assert_eq!(content(&c, &base, &ask("Record rec-00421")).await, "No script for this.");
    // Only the last user message is searched.
    let earlier = json!({"model": "m", "messages": [
        {"role": "user", "content": "capital of France?"}, {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Spain?"}]});
    assert_eq!(content(&c, &base, &earlier).await, "No script for this.");

    // Without a default, an unmatched request gets the usual reply (here: structured output).
    let no_default = temp_file("no-default.jsonl", "{\"match\": \"^ping$\", \"reply\": \"pong\"}\n");
    let server = modelcall_sim::start(SimOptions { replies: Some(no_default), ..SimOptions::default() }).await.unwrap();
    let base = server.base_url();
    assert_eq!(content(&c, &base, &ask("ping")).await, "pong");
    let doc: Value = serde_json::from_str(&content(&c, &base, &judge_request("pong?", &pairwise())).await).unwrap();
    assert_valid(&pairwise(), &doc);
    assert!(content(&c, &base, &ask("ping?")).await.contains("SIMULATED"));
}

#[tokio::test]
async fn a_missing_or_malformed_replies_file_stops_the_start() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("modelcall-sim-no-such-replies.jsonl");
    let Err(err) = modelcall_sim::start(SimOptions { replies: Some(missing.clone()), ..SimOptions::default() }).await else {
        panic!("started without its replies file")
    };
    match &err {
        SimError::Url(SimUrlError::RepliesFile { file, .. }) => assert_eq!(file, &missing.display().to_string()),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("modelcall-sim-no-such-replies.jsonl"), "{err}");

    let bad = temp_file("bad.jsonl", "{\"match\": \"ok\", \"reply\": \"fine\"}\n{\"match\": \"ok\" \"reply\": 1}\n");
    let Err(err) = modelcall_sim::start(SimOptions { replies: Some(bad.clone()), ..SimOptions::default() }).await else {
        panic!("started with a malformed replies file")
    };
    match &err {
        SimError::Url(SimUrlError::RepliesLine { file, line, message }) => {
            assert_eq!((file.as_str(), *line), (bad.display().to_string().as_str(), 2));
            assert!(message.starts_with("not JSON"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string().split(": ").next().unwrap(), format!("sim:// replies file `{}` line 2", bad.display()));
}
