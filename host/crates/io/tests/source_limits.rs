//! Source edge cases: byte order marks, truncated compressed files, deep nesting, numbers out
//! of range and over-long lines, for JSONL and (where they apply) Parquet.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use modelcall_io::{open_source, open_source_with, BadLineCause, SourceError, SourceItem, SourceOptions, MAX_DEPTH};

fn items(path: &Path, options: SourceOptions) -> Vec<Result<SourceItem, SourceError>> {
    open_source_with(path, options).unwrap().collect()
}

/// (line, "ok" or the cause) of every item; panics on a source error.
fn summary(path: &Path, options: SourceOptions) -> Vec<(u64, &'static str)> {
    items(path, options)
        .into_iter()
        .map(|i| match i.unwrap() {
            SourceItem::Record { line, .. } => (line, "ok"),
            SourceItem::Bad { line, cause, .. } => (line, cause.as_str()),
        })
        .collect()
}

fn nested(depth: usize) -> String {
    // `depth` levels in all, the record object being the first.
    format!("{{\"a\":{}1{}}}", "[".repeat(depth - 1), "]".repeat(depth - 1))
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bom.jsonl");
    std::fs::write(&p, b"\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}\n").unwrap();
    assert_eq!(summary(&p, SourceOptions::default()), vec![(1, "ok"), (2, "ok")]);
    // A BOM alone on the first line is an empty line.
    std::fs::write(&p, b"\xEF\xBB\xBF\r\n{\"a\":2}\n").unwrap();
    assert_eq!(summary(&p, SourceOptions::default()), vec![(2, "ok")]);
    // Also through gzip.
    let gz = dir.path().join("bom.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(b"\xEF\xBB\xBF{\"a\":1}\n").unwrap();
    enc.finish().unwrap();
    assert_eq!(summary(&gz, SourceOptions::default()), vec![(1, "ok")]);
}

fn many_lines(n: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..n {
        // Incompressible-ish content so the cut lands mid-stream.
        writeln!(text, "{{\"id\":{i},\"pad\":\"{:016x}\"}}", (i as u64).wrapping_mul(0x9E3779B97F4A7C15)).unwrap();
    }
    text
}

fn assert_truncation_reported(path: &Path) {
    let all = items(path, SourceOptions::default());
    let records = all.iter().filter(|i| matches!(i, Ok(SourceItem::Record { .. }))).count() as u64;
    let last = all.last().expect("some items");
    match last {
        Err(e @ SourceError::Read { line, .. }) => {
            assert_eq!(*line, records, "the error names the last line read");
            let message = e.to_string();
            assert!(message.contains(&format!("after line {records}")), "{message}");
        }
        other => panic!("{path:?}: expected a read error naming the line, got {other:?} after {records} records"),
    }
    assert!(records > 0 && records < 20_000, "{records}");
    // Every record before the error was read, in order.
    for (i, item) in all[..all.len() - 1].iter().enumerate() {
        assert!(matches!(item, Ok(SourceItem::Record { line, record }) if *line == i as u64 + 1 && record["id"] == i), "{i}");
    }
}

#[test]
fn a_truncated_gz_or_zst_names_the_line_reached() {
    let dir = tempfile::tempdir().unwrap();
    let text = many_lines(20_000);
    let gz = dir.path().join("t.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&text).unwrap();
    let full = enc.finish().unwrap();
    std::fs::write(&gz, &full[..full.len() / 2]).unwrap();
    assert_truncation_reported(&gz);

    let zst = dir.path().join("t.jsonl.zst");
    let full = zstd::encode_all(&text[..], 3).unwrap();
    std::fs::write(&zst, &full[..full.len() / 2]).unwrap();
    assert_truncation_reported(&zst);
}

#[test]
fn deep_nesting_and_huge_numbers_are_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("deep.jsonl");
    let lines = [
        nested(MAX_DEPTH),         // 1: at the limit: fine
        nested(MAX_DEPTH + 1),     // 2: over
        nested(200),               // 3: over serde_json's own limit too
        "{\"x\":1e400}".into(),    // 4: out of range
        "{\"x\":\"[[[[\"}".into(), // 5: brackets in strings don't count
        "{\"a\":1}".into(),        // 6
    ];
    std::fs::write(&p, lines.join("\n")).unwrap();
    let all: Vec<SourceItem> = items(&p, SourceOptions::default()).into_iter().map(Result::unwrap).collect();
    let got = line_causes(&all);
    assert_eq!(got, vec![(1, "ok"), (2, "too_deep"), (3, "too_deep"), (4, "invalid_json"), (5, "ok"), (6, "ok")]);
    let SourceItem::Bad { cause, .. } = &all[1] else { unreachable!() };
    assert_eq!(cause, &BadLineCause::TooDeep { limit: 100 });
    assert!(cause.to_string().contains("nested deeper than 100 levels"), "{cause}");
    let SourceItem::Bad { cause, .. } = &all[3] else { unreachable!() };
    assert!(cause.to_string().contains("number out of range"), "{cause}");
}

/// A record at the depth limit still fits in a journal entry and reads back.
#[test]
fn a_record_at_the_depth_limit_survives_the_journal() {
    use modelcall_io::{EntryStatus, Journal, JournalEntry};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.jsonl");
    std::fs::write(&p, nested(MAX_DEPTH)).unwrap();
    let Some(Ok(SourceItem::Record { record, .. })) = open_source(&p).unwrap().next() else { panic!() };
    let jp = dir.path().join("j.jsonl");
    let (j, _) = Journal::open(&jp, std::time::Duration::from_millis(5)).unwrap();
    let mut row = serde_json::Map::new();
    row.insert("input".into(), serde_json::Value::Object(record));
    j.append(JournalEntry::new("k", EntryStatus::Ok, row)).unwrap();
    j.close().unwrap();
    let (_j, state) = Journal::open(&jp, std::time::Duration::from_millis(5)).unwrap();
    assert!(state.done_ok.contains("k"));
    assert_eq!(state.unreadable_lines + state.torn_lines_dropped, 0);
}

#[test]
fn over_long_lines_are_bad_and_later_lines_keep_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long.jsonl");
    let long = format!("{{\"t\":\"{}\"}}", "x".repeat(5000));
    let exact = format!("{{\"t\":\"{}\"}}", "y".repeat(100 - 8)); // exactly 100 bytes
    assert_eq!(exact.len(), 100);
    let over = format!("{{\"t\":\"{}\"}}", "z".repeat(100 - 7)); // 101 bytes
    let text = format!("{{\"a\":1}}\n{long}\r\n{exact}\r\n{over}\n\n{}\n{long}", " ".repeat(300));
    std::fs::write(&p, text).unwrap();
    let options = SourceOptions { max_record_bytes: 100 };
    let all: Vec<SourceItem> = items(&p, options).into_iter().map(Result::unwrap).collect();
    let got = line_causes(&all);
    assert_eq!(got, vec![(1, "ok"), (2, "record_too_large"), (3, "ok"), (4, "record_too_large"), (7, "record_too_large")]);
    let SourceItem::Bad { cause, raw_excerpt, .. } = &all[1] else { unreachable!() };
    assert_eq!(cause, &BadLineCause::RecordTooLarge { bytes: long.len() as u64, limit: 100 });
    assert!(raw_excerpt.starts_with("{\"t\":\"xxx"));
    let SourceItem::Bad { cause, .. } = &all[3] else { unreachable!() };
    assert_eq!(cause, &BadLineCause::RecordTooLarge { bytes: 101, limit: 100 });
    // The default limit is 32 MiB.
    assert_eq!(SourceOptions::default().max_record_bytes, 32 << 20);
    assert_eq!(summary(&p, SourceOptions::default()), vec![(1, "ok"), (2, "ok"), (3, "ok"), (4, "ok"), (7, "ok")]);
}

fn write_parquet(path: &Path, schema: Schema, rows: &[serde_json::Value]) {
    let schema = Arc::new(schema);
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone()).build_decoder().unwrap();
    decoder.serialize(rows).unwrap();
    let batch = decoder.flush().unwrap().unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_rows_over_the_limits_are_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.parquet");
    let schema = Schema::new(vec![Field::new("t", DataType::Utf8, true)]);
    let rows = vec![serde_json::json!({"t": "short"}), serde_json::json!({"t": "x".repeat(500)}), serde_json::json!({"t": "ok"})];
    write_parquet(&p, schema, &rows);
    assert_eq!(summary(&p, SourceOptions { max_record_bytes: 100 }), vec![(1, "ok"), (2, "record_too_large"), (3, "ok")]);
    assert_eq!(summary(&p, SourceOptions::default()), vec![(1, "ok"), (2, "ok"), (3, "ok")]);

    // Lists nested `levels` deep inside the row object.
    let deep_schema = |levels: usize| {
        let mut dt = DataType::Int64;
        for _ in 0..levels {
            dt = DataType::List(Arc::new(Field::new("item", dt, true)));
        }
        Schema::new(vec![Field::new("c", dt, true)])
    };
    let deep_row = |levels: usize| {
        let mut v = serde_json::json!(1);
        for _ in 0..levels {
            v = serde_json::json!([v]);
        }
        serde_json::json!({ "c": v })
    };
    for (levels, want) in [(MAX_DEPTH - 1, "ok"), (MAX_DEPTH, "too_deep")] {
        let p = dir.path().join(format!("deep{levels}.parquet"));
        write_parquet(&p, deep_schema(levels), &[deep_row(levels), deep_row(levels)]);
        assert_eq!(summary(&p, SourceOptions::default()), vec![(1, want), (2, want)], "{levels} levels");
    }
}

/// `(line, "ok" | cause)` of every item, in order.
fn line_causes(all: &[SourceItem]) -> Vec<(u64, &str)> {
    all.iter()
        .map(|i| match i {
            SourceItem::Record { line, .. } => (*line, "ok"),
            SourceItem::Bad { line, cause, .. } => (*line, cause.as_str()),
        })
        .collect()
}
