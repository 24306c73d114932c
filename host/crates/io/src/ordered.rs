//! Input-order outputs (`ordered: true`): a finalized JSONL output whose rows carry their input
//! position in `SEQ_FIELD` is rewritten in that order, through sorted buckets on disk, so the
//! reorder buffer is bounded (one bucket of rows) whatever the file size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value};

use crate::atomic::AtomicFile;
use crate::sink::error::SinkError;

/// The field holding a row's input position; removed from the final output.
pub const SEQ_FIELD: &str = "_modelcall_seq";

/// Rows per bucket: the bound on rows held in memory while reordering.
const BUCKET_ROWS: u64 = 8192;

/// Builds an input position: the file's index in its unit, the line, and a sub-index (the
/// sample of `n: k` generation, or the record of a preprocessor that made several).
pub fn position(file_index: u64, line: u64, sub: u64) -> u64 {
    (file_index << 42) | (line.min((1 << 32) - 1) << 10) | sub.min(1023)
}

/// Reads the JSONL rows of `src` and writes them to `out` sorted by their [`SEQ_FIELD`], which
/// is removed. Returns the rows written.
pub fn reorder_into(src: &Path, out: &mut AtomicFile) -> Result<u64, SinkError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| SinkError::Io { path: p.clone(), source }
    };
    // Beside the destination (a scratch file has none: beside its temporary file).
    let dir = crate::atomic::scratch_dir_for(if out.dest().as_os_str().is_empty() { out.temp_path() } else { out.dest() });
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let result = (|| {
        // Spread rows into buckets by position; remember which buckets exist.
        let mut writers: BTreeMap<u64, BufWriter<File>> = BTreeMap::new();
        let reader = BufReader::new(File::open(src).map_err(io(src))?);
        let mut rows_in: Vec<(u64, String)> = Vec::new();
        for line in reader.lines() {
            let line = line.map_err(io(src))?;
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
        let mut written = 0u64;
        let mut buckets: Vec<u64> =
            std::fs::read_dir(&dir).map_err(io(&dir))?.filter_map(|e| e.ok()?.file_name().to_string_lossy().strip_prefix("b-")?.parse().ok()).collect();
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
                let mut bytes = serde_json::to_vec(&row).expect("rows serialize");
                bytes.push(b'\n');
                out.write_all(&bytes).map_err(io(out.dest()))?;
                written += 1;
            }
        }
        Ok(written)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Positions are spread over buckets by value range: bucket = seq / (1024 * BUCKET_ROWS), so a
/// bucket holds at most BUCKET_ROWS records' worth of positions (1024 samples per line max).
fn spill(dir: &Path, writers: &mut BTreeMap<u64, BufWriter<File>>, rows: &mut Vec<(u64, String)>) -> Result<(), SinkError> {
    for (seq, line) in rows.drain(..) {
        let b = seq / (1024 * BUCKET_ROWS);
        if let std::collections::btree_map::Entry::Vacant(e) = writers.entry(b) {
            let p = dir.join(format!("b-{b}"));
            let f = File::create(&p).map_err(|source| SinkError::Io { path: p.clone(), source })?;
            e.insert(BufWriter::new(f));
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
        assert_eq!(position(0, 5, 0), 5 * 1024);
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
        let dest = dir.path().join("ordered.jsonl");
        let mut out = AtomicFile::create(&dest).unwrap();
        assert_eq!(reorder_into(&p, &mut out).unwrap(), 20_000);
        out.commit().unwrap();
        std::fs::remove_file(&p).unwrap();
        let out = std::fs::read_to_string(&dest).unwrap();
        for (i, line) in out.lines().enumerate() {
            assert_eq!(line, format!("{{\"id\":{i}}}"));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no leftovers");
    }
}
