//! Property tests of the sources: whatever the bytes, a JSONL source never panics and yields
//! exactly one item per non-empty line; a Parquet file gives back every row it was written with.

use std::io::Write;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use modelcall_io::{open_source_with, SourceItem, SourceOptions, MAX_DEPTH};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1000i32..1000).prop_map(|i| Value::from(i as f64 / 8.0)),
        prop::collection::vec(any::<char>(), 0..8).prop_map(|c| Value::from(String::from_iter(c))),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\u{e9}\"\\\\]{0,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{0,6}", json_value(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// One input line, without its line end.
#[derive(Debug, Clone)]
enum Line {
    Object(Map<String, Value>),
    Garbage(Vec<u8>),
    InvalidUtf8(Vec<u8>),
    Deep(usize),
    Blank(String),
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => json_object().prop_map(Line::Object),
        2 => prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40).prop_map(Line::Garbage),
        1 => (prop::collection::vec(0x20u8..0x7f, 0..10), 0x80u8..=0xff).prop_map(|(mut v, b)| {
            v.insert(0, b'"');
            v.push(b);
            Line::InvalidUtf8(v)
        }),
        1 => (1usize..300).prop_map(Line::Deep),
        1 => "[ \t\r]{0,3}".prop_map(Line::Blank),
    ]
}

impl Line {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Line::Object(m) => serde_json::to_vec(m).unwrap(),
            Line::Garbage(b) | Line::InvalidUtf8(b) => b.clone(),
            // `d` levels in all, the record object being the first.
            Line::Deep(d) => format!("{{\"a\":{}1{}}}", "[".repeat(d - 1), "]".repeat(d - 1)).into_bytes(),
            Line::Blank(s) => s.clone().into_bytes(),
        }
    }
}

/// What the reader must treat as empty: nothing but ASCII whitespace once a leading BOM is gone.
fn is_empty_line(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(bytes);
    bytes.iter().all(u8::is_ascii_whitespace)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn jsonl_yields_one_item_per_non_empty_line(
        lines in prop::collection::vec((line(), any::<bool>(), any::<bool>()), 0..30),
        bom in any::<bool>(),
        trailing_newline in any::<bool>(),
        gz in any::<bool>(),
        small_cap in prop::option::of(16usize..400),
    ) {
        let mut raw_lines: Vec<Vec<u8>> = Vec::new();
        let mut text = Vec::new();
        for (i, (l, crlf, bom_here)) in lines.iter().enumerate() {
            let mut bytes = Vec::new();
            if (i == 0 && bom) || *bom_here {
                bytes.extend_from_slice(b"\xEF\xBB\xBF");
            }
            bytes.extend_from_slice(&l.bytes());
            if *crlf {
                bytes.push(b'\r');
            }
            text.extend_from_slice(&bytes);
            if i + 1 < lines.len() || trailing_newline {
                text.push(b'\n');
            }
            raw_lines.push(bytes);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = if gz {
            let p = dir.path().join("in.jsonl.gz");
            let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
            enc.write_all(&text).unwrap();
            enc.finish().unwrap();
            p
        } else {
            let p = dir.path().join("in.jsonl");
            std::fs::write(&p, &text).unwrap();
            p
        };
        let options = SourceOptions { max_record_bytes: small_cap.unwrap_or(SourceOptions::default().max_record_bytes) };
        let items: Vec<SourceItem> = open_source_with(&path, options).unwrap().map(|i| i.unwrap()).collect();

        let want_lines: Vec<u64> = raw_lines.iter().enumerate().filter(|(_, b)| !is_empty_line(b)).map(|(i, _)| i as u64 + 1).collect();
        let got_lines: Vec<u64> = items.iter().map(|i| match i { SourceItem::Record { line, .. } | SourceItem::Bad { line, .. } => *line }).collect();
        prop_assert_eq!(&got_lines, &want_lines);

        for item in &items {
            let (line, record) = match item {
                SourceItem::Record { line, record } => (*line, Some(record)),
                SourceItem::Bad { line, .. } => (*line, None),
            };
            let (l, _, _) = &lines[line as usize - 1];
            let len = raw_lines[line as usize - 1].len();
            let fits = small_cap.is_none_or(|cap| len <= cap);
            match l {
                Line::Object(m) if fits => prop_assert_eq!(record, Some(m), "line {}", line),
                Line::Deep(d) if fits => prop_assert_eq!(record.is_some(), *d <= MAX_DEPTH, "line {} depth {}", line, d),
                Line::InvalidUtf8(_) => prop_assert!(record.is_none()),
                _ => {}
            }
            if let Some(cap) = small_cap {
                if record.is_some() {
                    prop_assert!(len <= cap + 3 + 1, "a {}-byte line passed a {}-byte cap", len, cap);
                }
            }
        }
    }
}

fn parquet_schema() -> Schema {
    let inner = Fields::from(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Utf8, true)]);
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        Field::new("inner", DataType::Struct(inner), true),
    ])
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

fn parquet_row() -> impl Strategy<Value = Value> {
    (
        prop::option::of(text()),
        prop::option::of((-100_000i64..100_000).prop_map(|i| i as f64 / 16.0)),
        prop::option::of(prop::collection::vec(text(), 0..4)),
        prop::option::of((prop::option::of(any::<i64>()), prop::option::of(text()))),
    )
        .prop_map(|(name, score, tags, inner)| {
            let mut row = Map::new();
            row.insert("id".into(), json!(0));
            if let Some(n) = name {
                row.insert("name".into(), json!(n));
            }
            if let Some(s) = score {
                row.insert("score".into(), json!(s));
            }
            if let Some(t) = tags {
                row.insert("tags".into(), json!(t));
            }
            if let Some((a, b)) = inner {
                let mut m = Map::new();
                if let Some(a) = a {
                    m.insert("a".into(), json!(a));
                }
                if let Some(b) = b {
                    m.insert("b".into(), json!(b));
                }
                row.insert("inner".into(), Value::Object(m));
            }
            Value::Object(row)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parquet_gives_back_every_row(rows in prop::collection::vec(parquet_row(), 0..2200)) {
        let rows: Vec<Value> = rows
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r["id"] = json!(i);
                r
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        let schema = Arc::new(parquet_schema());
        let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), None).unwrap();
        let mut decoder = arrow_json::ReaderBuilder::new(schema).with_batch_size(700).build_decoder().unwrap();
        for chunk in rows.chunks(700) {
            decoder.serialize(chunk).unwrap();
            if let Some(batch) = decoder.flush().unwrap() {
                writer.write(&batch).unwrap();
            }
        }
        writer.close().unwrap();

        let items: Vec<SourceItem> = open_source_with(&path, SourceOptions::default()).unwrap().map(|i| i.unwrap()).collect();
        prop_assert_eq!(items.len(), rows.len());
        for (i, (item, want)) in items.iter().zip(&rows).enumerate() {
            match item {
                SourceItem::Record { line, record } => {
                    prop_assert_eq!(*line, i as u64 + 1);
                    prop_assert_eq!(&Value::Object(record.clone()), want, "row {}", i);
                }
                SourceItem::Bad { line, cause, .. } => prop_assert!(false, "row {} ({}) bad: {}", i, line, cause),
            }
        }
    }
}
