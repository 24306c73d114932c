//! Which part of the input each shard of a sharded run reads: whole files and, for large files,
//! line-aligned byte ranges (plain JSONL) or row-group ranges (Parquet), balanced by size, so
//! each of N shards reads about 1/N of the bytes instead of all of them.
//!
//! The inputs are laid end to end and cut at `k × total / N`; each cut inside a splittable file
//! moves forward to the next line start (or row-group start), and a file that cannot be split
//! (gzip, zstd) goes whole to the shard holding its middle. Every shard's pieces are contiguous.
//!
//! A compressed file is laid out at its *uncompressed* size (gzip's ISIZE footer, zstd's frame
//! content size), since that is what its shard reads and sends: weighed by its compressed size,
//! a `.gz` beside plain files gave its shard several times the records of the others. A split
//! that would leave a shard with nothing because compressed files cannot be cut (one `.gz` over
//! 4 shards) is refused with what to do, rather than run as N-1 idle jobs.
//!
//! The plan is written once, to `<output>/.modelcall/shards.json`, and every shard and `merge`
//! read that file: a run with another N, or over other inputs, is refused instead of silently
//! reading a different split.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::Slice;

/// One piece of one input file and the shard that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub shard: u32,
    pub slice: Slice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub size: u64,
    /// In file order; at most one per shard.
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    pub shards: u32,
    pub files: Vec<PlannedFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{plan} splits this output folder into {planned} shards, not {asked}; run every shard with --shard I/{planned}, or merge the finished shards (`modelcall merge`) and remove the plan to split it again", plan = plan.display())]
    OtherShardCount { plan: PathBuf, planned: u32, asked: u32 },
    #[error("{plan} was made for other input files ({detail}); merge the shards done so far, then remove the plan to split the new inputs", plan = plan.display())]
    OtherInputs { plan: PathBuf, detail: String },
    #[error(
        "{shards} shards over these inputs would leave shard(s) {empty} with nothing to read: {compressed} compressed and read whole by one shard (a compressed stream cannot be cut at a line without decompressing everything before it); decompress it (`gunzip -k FILE` / `zstd -d FILE`) so it is split by lines, split it into at least {shards} files, or use fewer shards",
        empty = list(empty),
        compressed = compressed_list(compressed)
    )]
    Unsplittable { shards: u32, empty: Vec<u32>, compressed: Vec<PathBuf> },
}

fn list(items: &[u32]) -> String {
    let shown: Vec<String> = items.iter().take(8).map(u32::to_string).collect();
    match items.len() {
        0..=8 => shown.join(", "),
        n => format!("{} and {} more", shown.join(", "), n - 8),
    }
}

fn compressed_list(files: &[PathBuf]) -> String {
    let shown: Vec<String> = files.iter().take(3).map(|f| f.display().to_string()).collect();
    match files.len() {
        1 => format!("{} is", shown[0]),
        0..=3 => format!("{} are", shown.join(", ")),
        n => format!("{} and {} more are", shown.join(", "), n - 3),
    }
}

/// The bytes a shard reads from a compressed file once decompressed: gzip's ISIZE footer (the
/// last member's size mod 2^32, raised by 2^32 steps until it is at least the compressed size,
/// as text never compresses to more than its length), or the content size a zstd frame header
/// declares. `None` for other files, or when the header does not say (the compressed size is
/// then the weight).
pub fn uncompressed_size(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    let mut file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    if name.ends_with(".gz") {
        if size < 18 {
            return None;
        }
        let mut magic = [0u8; 2];
        file.read_exact(&mut magic).ok()?;
        if magic != [0x1f, 0x8b] {
            return None;
        }
        file.seek(SeekFrom::End(-4)).ok()?;
        let mut isize = [0u8; 4];
        file.read_exact(&mut isize).ok()?;
        let mut n = u32::from_le_bytes(isize) as u64;
        while n < size {
            n += 1 << 32;
        }
        return Some(n);
    }
    if name.ends_with(".zst") || name.ends_with(".zstd") {
        let mut head = [0u8; 18];
        let got = file.read(&mut head).ok()?;
        let head = &head[..got];
        if head.len() < 6 || head[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
            return None;
        }
        let descriptor = head[4];
        let single_segment = descriptor & 0x20 != 0;
        let fcs_len = match descriptor >> 6 {
            0 if single_segment => 1,
            0 => return None,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let dict_len = [0usize, 1, 2, 4][(descriptor & 3) as usize];
        let at = 5 + usize::from(!single_segment) + dict_len;
        let bytes = head.get(at..at + fcs_len)?;
        let mut le = [0u8; 8];
        le[..fcs_len].copy_from_slice(bytes);
        let n = u64::from_le_bytes(le) + if fcs_len == 2 { 256 } else { 0 };
        return Some(n);
    }
    None
}

/// Where the plan of an output folder lives.
pub fn plan_path(output_folder: &Path) -> PathBuf {
    output_folder.join(".modelcall").join("shards.json")
}

impl ShardPlan {
    /// Splits `files` (in order) into `shards` balanced, contiguous parts.
    pub fn build(files: &[PathBuf], shards: u32) -> Result<ShardPlan, PlanError> {
        let shards = shards.max(1);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PlanError::Io { path: path.clone(), source }
        };
        let sizes: Vec<u64> = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).map_err(io(f))).collect::<Result<_, _>>()?;
        // Where each file lies on the line the cuts are made on: plain files and Parquet by
        // their size, compressed files by what they decompress to.
        let weights: Vec<u64> = files
            .iter()
            .zip(&sizes)
            .map(|(f, &size)| match crate::source::slice_kind(f) {
                Some(_) => size,
                None => uncompressed_size(f).unwrap_or(size),
            })
            .collect();
        let total: u64 = weights.iter().sum::<u64>().max(1);
        // The shard a global byte position falls in.
        let shard_at = |pos: u64| -> u32 { ((pos as u128 * shards as u128 / total as u128) as u32).min(shards - 1) };
        let mut planned = Vec::with_capacity(files.len());
        let mut offset = 0u64;
        let mut compressed = Vec::new();
        for ((path, &size), &weight) in files.iter().zip(&sizes).zip(&weights) {
            let pieces = match crate::source::slice_kind(path) {
                Some("bytes") => byte_pieces(path, offset, size, &shard_at).map_err(io(path))?,
                Some(_) => row_group_pieces(path, offset, size, &shard_at).map_err(io(path))?,
                None => {
                    compressed.push(path.clone());
                    vec![Piece { shard: shard_at(offset + weight / 2), slice: Slice::Whole }]
                }
            };
            planned.push(PlannedFile { path: path.clone(), size, pieces });
            offset += weight;
        }
        let plan = ShardPlan { shards, files: planned };
        if !compressed.is_empty() {
            let mut has = vec![false; shards as usize];
            for p in plan.files.iter().flat_map(|f| &f.pieces) {
                has[p.shard as usize] = true;
            }
            let empty: Vec<u32> = (0..shards).filter(|&i| !has[i as usize]).collect();
            if !empty.is_empty() {
                return Err(PlanError::Unsplittable { shards, empty, compressed });
            }
        }
        Ok(plan)
    }

    /// The plan of `output_folder` when there is one, else a new one for `files`, written there.
    /// A plan for another shard count or other inputs is an error.
    pub fn load_or_create(output_folder: &Path, files: &[PathBuf], shards: u32) -> Result<ShardPlan, PlanError> {
        let path = plan_path(output_folder);
        if let Some(existing) = Self::load(output_folder)? {
            if existing.shards != shards {
                return Err(PlanError::OtherShardCount { plan: path, planned: existing.shards, asked: shards });
            }
            let planned: Vec<&PathBuf> = existing.files.iter().map(|f| &f.path).collect();
            let asked: Vec<&PathBuf> = files.iter().collect();
            if planned != asked {
                let detail = match asked.iter().find(|f| !planned.contains(f)) {
                    Some(new) => format!("{} is not in it", new.display()),
                    None => format!("{} file(s) planned, {} now", planned.len(), asked.len()),
                };
                return Err(PlanError::OtherInputs { plan: path, detail });
            }
            return Ok(existing);
        }
        let plan = Self::build(files, shards)?;
        // Every shard computes the same plan from the same inputs, so concurrent first runs
        // write identical files; the write is atomic either way.
        let text = serde_json::to_string_pretty(&plan).expect("plans serialize");
        crate::atomic::write_atomically(&path, text.as_bytes()).map_err(|e| PlanError::Io { path: path.clone(), source: e.source })?;
        Ok(plan)
    }

    pub fn load(output_folder: &Path) -> Result<Option<ShardPlan>, PlanError> {
        let path = plan_path(output_folder);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map(Some).map_err(|e| PlanError::Io { path, source: std::io::Error::new(std::io::ErrorKind::InvalidData, e) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PlanError::Io { path, source }),
        }
    }

    /// What shard `shard` reads: (file, its index in the plan, the piece's ordinal within the
    /// file, slice).
    pub fn pieces_of(&self, shard: u32) -> Vec<(&PlannedFile, usize, Slice)> {
        let mut out = Vec::new();
        for f in &self.files {
            for (ordinal, p) in f.pieces.iter().enumerate() {
                if p.shard == shard {
                    out.push((f, ordinal, p.slice));
                }
            }
        }
        out
    }

    /// Bytes each shard reads (row groups counted at their compressed size share).
    pub fn bytes_per_shard(&self) -> Vec<u64> {
        let mut bytes = vec![0u64; self.shards as usize];
        for f in &self.files {
            for p in &f.pieces {
                bytes[p.shard as usize] += match p.slice {
                    Slice::Bytes { start, end } => end - start,
                    Slice::Whole => f.size,
                    Slice::RowGroups { .. } => f.size / f.pieces.len().max(1) as u64,
                };
            }
        }
        bytes
    }
}

/// Cuts a plain JSONL file occupying global bytes `[offset, offset + size)` at the shard
/// boundaries inside it, each moved forward to the next line start.
fn byte_pieces(path: &Path, offset: u64, size: u64, shard_at: &dyn Fn(u64) -> u32) -> std::io::Result<Vec<Piece>> {
    if size == 0 {
        return Ok(vec![Piece { shard: shard_at(offset), slice: Slice::Bytes { start: 0, end: 0 } }]);
    }
    let mut file = std::fs::File::open(path)?;
    let mut pieces = Vec::new();
    let mut start = 0u64;
    let mut shard = shard_at(offset);
    while start < size {
        // The first local position that belongs to a later shard (binary search: shard_at
        // grows with the position), moved forward to a line start.
        let (mut lo, mut hi) = (start, size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if shard_at(offset + mid) > shard {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let end = if lo >= size { size } else { next_line_start(&mut file, lo, size)? };
        pieces.push(Piece { shard, slice: Slice::Bytes { start, end } });
        start = end;
        if start < size {
            shard = shard_at(offset + start);
        }
    }
    Ok(pieces)
}

/// The first position `p ≥ at` where a line starts (`p == size` when none does).
fn next_line_start(file: &mut std::fs::File, at: u64, size: u64) -> std::io::Result<u64> {
    if at == 0 {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(at - 1))?;
    let mut buf = [0u8; 64 * 1024];
    let mut pos = at - 1;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(size);
        }
        if let Some(i) = memchr_newline(&buf[..n]) {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Row groups of a Parquet file, each to the shard holding its middle, as contiguous ranges.
/// The groups are laid over the file's whole `size` in proportion to their own sizes, so the
/// footer (large beside the data of a small file) does not push them all into one shard.
fn row_group_pieces(path: &Path, offset: u64, size: u64, shard_at: &dyn Fn(u64) -> u32) -> std::io::Result<Vec<Piece>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path)?).map_err(std::io::Error::other)?;
    let groups = reader.metadata().row_groups();
    let data: u64 = groups.iter().map(|g| g.compressed_size().max(0) as u64).sum::<u64>().max(1);
    let scaled = |n: u64| (n as u128 * size as u128 / data as u128) as u64;
    let mut pieces: Vec<Piece> = Vec::new();
    let mut at = 0u64;
    for (i, g) in groups.iter().enumerate() {
        let len = g.compressed_size().max(0) as u64;
        let shard = shard_at(offset + scaled(at + len / 2));
        at += len;
        match pieces.last_mut() {
            Some(Piece { shard: s, slice: Slice::RowGroups { end, .. } }) if *s == shard => *end = i + 1,
            _ => pieces.push(Piece { shard, slice: Slice::RowGroups { start: i, end: i + 1 } }),
        }
    }
    if pieces.is_empty() {
        pieces.push(Piece { shard: shard_at(offset), slice: Slice::Whole });
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonl(dir: &Path, name: &str, lines: usize, width: usize) -> PathBuf {
        let p = dir.join(name);
        let text: String = (0..lines).map(|i| format!("{{\"id\":{i},\"t\":\"{}\"}}\n", "x".repeat(width))).collect();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn shards_read_about_one_nth_at_line_starts_and_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let big = jsonl(dir.path(), "big.jsonl", 5000, 37);
        let small = jsonl(dir.path(), "small.jsonl", 10, 5);
        let plan = ShardPlan::build(&[big.clone(), small.clone()], 8).unwrap();
        let total: u64 = plan.files.iter().map(|f| f.size).sum();
        for b in plan.bytes_per_shard() {
            assert!(b <= total / 8 + total / 50, "{b} of {total}");
        }
        // Every line of the big file is read by exactly one shard, in order.
        let mut ids = Vec::new();
        for shard in 0..8 {
            for (f, _, slice) in plan.pieces_of(shard) {
                for item in crate::source::open_slice(&f.path, slice, Default::default(), None).unwrap() {
                    if let crate::SourceItem::Record { record, .. } = item.unwrap() {
                        if f.path == big {
                            ids.push(record["id"].as_u64().unwrap());
                        }
                    }
                }
            }
        }
        assert_eq!(ids, (0..5000).collect::<Vec<u64>>());
    }

    #[test]
    fn a_plan_is_reused_and_another_n_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = jsonl(dir.path(), "a.jsonl", 100, 10);
        let out = dir.path().join("out");
        let p1 = ShardPlan::load_or_create(&out, std::slice::from_ref(&f), 4).unwrap();
        let p2 = ShardPlan::load_or_create(&out, std::slice::from_ref(&f), 4).unwrap();
        assert_eq!(p1, p2);
        let err = ShardPlan::load_or_create(&out, std::slice::from_ref(&f), 8).unwrap_err();
        assert!(err.to_string().contains("into 4 shards, not 8"), "{err}");
    }

    fn gz(dir: &Path, name: &str, lines: usize) -> PathBuf {
        use std::io::Write;
        let p = dir.join(name);
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
        for i in 0..lines {
            writeln!(enc, "{{\"id\":{i},\"t\":\"{}\"}}", "x".repeat(40)).unwrap();
        }
        enc.finish().unwrap();
        p
    }

    #[test]
    fn compressed_files_go_whole_to_one_shard() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl.gz");
        let b = dir.path().join("b.jsonl.gz");
        std::fs::write(&a, b"not really gzip but big enough").unwrap();
        std::fs::write(&b, b"not really gzip but big enough").unwrap();
        let plan = ShardPlan::build(&[a, b], 2).unwrap();
        for f in &plan.files {
            assert_eq!(f.pieces.len(), 1);
            assert_eq!(f.pieces[0].slice, Slice::Whole);
        }
        assert_ne!(plan.files[0].pieces[0].shard, plan.files[1].pieces[0].shard);
    }

    #[test]
    fn a_gz_weighs_what_it_decompresses_to() {
        let dir = tempfile::tempdir().unwrap();
        // 20,000 lines of ~55 bytes: ~1.1 MB plain, a few KB gzipped.
        let packed = gz(dir.path(), "a.jsonl.gz", 20_000);
        let plain_len = 20_000 * format!("{{\"id\":{},\"t\":\"{}\"}}\n", 10_000, "x".repeat(40)).len() as u64;
        let isize = uncompressed_size(&packed).unwrap();
        assert!(isize.abs_diff(plain_len) < plain_len / 10, "{isize} vs {plain_len}");
        assert!(std::fs::metadata(&packed).unwrap().len() < isize / 10);
        // Beside a plain file of about the same decompressed size, the two are one shard each
        // (weighed compressed, the .gz would be a sliver of the plain file's shard).
        let plain = jsonl(dir.path(), "b.jsonl", 20_000, 40);
        let plan = ShardPlan::build(&[packed, plain], 2).unwrap();
        assert_eq!(plan.files[0].pieces, vec![Piece { shard: 0, slice: Slice::Whole }]);
        assert!(plan.files[1].pieces.iter().all(|p| p.shard == 1), "{:?}", plan.files[1].pieces);
    }

    #[test]
    fn zstd_frame_content_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl.zst");
        let body = "{\"id\":1}\n".repeat(10_000);
        // One-shot compression records the content size in the frame header (as `zstd FILE` does).
        std::fs::write(&p, zstd::bulk::compress(body.as_bytes(), 3).unwrap()).unwrap();
        assert_eq!(uncompressed_size(&p), Some(body.len() as u64));
    }

    #[test]
    fn one_compressed_file_over_several_shards_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let packed = gz(dir.path(), "big.jsonl.gz", 1000);
        let err = ShardPlan::build(std::slice::from_ref(&packed), 4).unwrap_err().to_string();
        assert!(
            err.contains("shard(s) 1, 2, 3") || err.contains("shard(s) 0, 1, 3") || err.contains("shard(s) 0, 2, 3") || err.contains("shard(s) 0, 1, 2"),
            "{err}"
        );
        assert!(err.contains("big.jsonl.gz is compressed") && err.contains("gunzip -k"), "{err}");
        assert!(ShardPlan::build(&[packed], 1).is_ok());
    }
}
