//! Input-order outputs (`ordered: true`): a finalized JSONL output whose rows carry their input
//! position in `SEQ_FIELD` is rewritten in that order, through sorted buckets on disk, so the
//! reorder buffer is bounded (one bucket of rows) whatever the file size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value};

use crate::sink::SinkError;

/// The field holding a row's input position; removed from the final output.
pub const SEQ_FIELD: &str = "_modelcall_seq";

/// Rows per bucket: the bound on rows held in memory while reordering.
const BUCKET_ROWS: u64 = 8192;

pub fn reorder_jsonl(path: &Path) -> Result<u64, SinkError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| SinkError::Io { path: p.clone(), source }
    };
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let dir = path.with_file_name(format!(".reorder-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let result = (|| {
        // Spread rows into buckets by position; remember which buckets exist.
        let mut writers: BTreeMap<u64, BufWriter<File>> = BTreeMap::new();
        let reader = BufReader::new(File::open(path).map_err(io(path))?);
        let mut rows_in: Vec<(u64, String)> = Vec::new();
        for line in reader.lines() {
            let line = line.map_err(io(path))?;
            if line.trim().is_empty() {
                continue;
            }
            let seq = serde_json::from_str::<Map<String, Value>>(&line).ok().and_then(|m| m.get(SEQ_FIELD).and_then(Value::as_u64)).unwrap_or(u64::MAX);
            rows_in.push((seq, line));
            if rows_in.len() as u64 >= BUCKET_ROWS {
                spill(&dir, &mut writers, &mut rows_in)?;
            }
        }
        spill(&dir, &mut writers, &mut rows_in)?;
        for (_, w) in writers.iter_mut() {
            w.flush().map_err(io(&dir))?;
        }
        drop(writers);
        // Bucket b holds positions in [b*R, (b+1)*R) of the sorted position space.
        let tmp = path.with_file_name(format!(".{name}.ordered-{}", std::process::id()));
        let mut out = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
        let mut written = 0u64;
        let mut buckets: Vec<u64> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok()?.file_name().to_string_lossy().strip_prefix("b-")?.parse().ok())
            .collect();
        buckets.sort();
        for b in buckets {
            let p = dir.join(format!("b-{b}"));
            let mut rows: Vec<(u64, Map<String, Value>)> = BufReader::new(File::open(&p).map_err(io(&p))?)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Map<String, Value>>(&l).ok())
                .map(|mut m| (m.remove(SEQ_FIELD).and_then(|v| v.as_u64()).unwrap_or(u64::MAX), m))
                .collect();
            rows.sort_by_key(|(seq, _)| *seq);
            for (_, row) in rows {
                serde_json::to_writer(&mut out, &row).expect("rows serialize");
                out.write_all(b"\n").map_err(io(&tmp))?;
                written += 1;
            }
        }
        let f = out.into_inner().map_err(|e| SinkError::Io { path: tmp.clone(), source: e.into_error() })?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        Ok(written)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Positions are spread over buckets by value range: bucket = seq / (1024 * BUCKET_ROWS), so a
/// bucket holds at most BUCKET_ROWS records' worth of positions (1024 samples per line max).
fn spill(
    dir: &Path,
    writers: &mut BTreeMap<u64, BufWriter<File>>,
    rows: &mut Vec<(u64, String)>,
) -> Result<(), SinkError> {
    for (seq, line) in rows.drain(..) {
        let b = seq / (1024 * BUCKET_ROWS);
        if !writers.contains_key(&b) {
            let p = dir.join(format!("b-{b}"));
            let f = File::create(&p).map_err(|source| SinkError::Io { path: p.clone(), source })?;
            writers.insert(b, BufWriter::new(f));
        }
        let w = writers.get_mut(&b).expect("inserted");
        w.write_all(line.as_bytes()).and_then(|_| w.write_all(b"\n")).map_err(|source| SinkError::Io { path: dir.to_path_buf(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_in_input_order_without_the_position_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        let mut text = String::new();
        // 20,000 rows in a scrambled order, positions spread over many buckets.
        let mut order: Vec<u64> = (0..20_000).collect();
        let mut x: u64 = 7;
        for i in (1..order.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (x >> 33) as usize % (i + 1));
        }
        for i in &order {
            text.push_str(&format!("{{\"id\":{i},\"{SEQ_FIELD}\":{}}}\n", i * 1024));
        }
        std::fs::write(&p, text).unwrap();
        assert_eq!(reorder_jsonl(&p).unwrap(), 20_000);
        let out = std::fs::read_to_string(&p).unwrap();
        for (i, line) in out.lines().enumerate() {
            assert_eq!(line, format!("{{\"id\":{i}}}"));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no leftovers");
    }
}
