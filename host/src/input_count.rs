//! Cheap record counts for the progress bar's ETA: newline counts of plain JSONL files and the
//! row count in Parquet metadata. Compressed inputs are not counted (that would mean reading
//! them twice); the bar then shows a rate without an ETA.

use std::io::Read;
use std::path::Path;

/// Records across `inputs`, when every one of them is cheap to count.
pub fn count_all(inputs: &[std::path::PathBuf]) -> Option<u64> {
    inputs.iter().map(|p| count_records_fast(p)).sum()
}

/// Records in `path`, or `None` when counting would be expensive or the file is unreadable.
pub fn count_records_fast(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    if name.ends_with(".parquet") {
        let file = std::fs::File::open(path).ok()?;
        let reader = parquet::file::reader::SerializedFileReader::new(file).ok()?;
        use parquet::file::reader::FileReader;
        return Some(reader.metadata().file_metadata().num_rows().max(0) as u64);
    }
    if name.ends_with(".jsonl") || name.ends_with(".json") || name.ends_with(".ndjson") {
        let mut file = std::fs::File::open(path).ok()?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut lines, mut last) = (0u64, b'\n');
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            last = buf[n - 1];
        }
        if last != b'\n' {
            lines += 1;
        }
        return Some(lines);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_with_and_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, "{}\n{}\n{}\n").unwrap();
        assert_eq!(count_records_fast(&a), Some(3));
        let b = dir.path().join("b.jsonl");
        std::fs::write(&b, "{}\n{}").unwrap();
        assert_eq!(count_records_fast(&b), Some(2));
        let c = dir.path().join("c.jsonl.gz");
        std::fs::write(&c, "x").unwrap();
        assert_eq!(count_records_fast(&c), None);
    }
}
