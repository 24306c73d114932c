//! Which journal line wins for each key (its latest `ok` entry, else its latest `error`), as a
//! stream of line indices in ascending order.
//!
//! Small journals are indexed in memory. Large ones are split by key hash into bucket files
//! beside the journal, each bucket resolved on its own and written back sorted by line index,
//! then the buckets are merged on the fly: memory is bounded by one bucket, so finalizing a
//! journal of any size needs the same few megabytes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::journal::EntryStatus;
use crate::keyset::key_hash;
use crate::sink::error::SinkError;
use crate::sink::lines::for_each_line;

/// Journal entries per bucket before the index goes to disk.
const DEFAULT_BUCKET_KEYS: u64 = 200_000;

#[derive(Deserialize)]
struct KeyStatus {
    key: String,
    status: EntryStatus,
}

fn code(s: EntryStatus) -> u8 {
    match s {
        EntryStatus::Ok => 0,
        EntryStatus::Error => 1,
        EntryStatus::Retired => 2,
    }
}

fn status(c: u8) -> EntryStatus {
    match c {
        0 => EntryStatus::Ok,
        1 => EntryStatus::Error,
        _ => EntryStatus::Retired,
    }
}

/// The later entry wins, except that an `error` never replaces an `ok`; a `retired` entry
/// voids everything before it (a retired winner writes no row).
fn better(current: (u64, u8), candidate: (u64, u8)) -> bool {
    candidate.1 == 2 || current.1 == 2 || !(current.1 == 0 && candidate.1 == 1)
}

pub enum Winners {
    InMemory(Vec<(u64, u8)>),
    Buckets { dir: PathBuf, files: Vec<PathBuf> },
}

impl Drop for Winners {
    fn drop(&mut self) {
        if let Winners::Buckets { dir, .. } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Winners {
    pub fn build(journal: &Path, duplicates: &mut u64) -> Result<Winners, SinkError> {
        let per_bucket =
            std::env::var("MODELCALL_FINALIZE_BUCKET_KEYS").ok().and_then(|v| v.parse().ok()).filter(|n: &u64| *n > 0).unwrap_or(DEFAULT_BUCKET_KEYS);
        let mut lines = 0u64;
        for_each_line(journal, |_, _| lines += 1)?;
        let buckets = lines.div_ceil(per_bucket).max(1);
        if buckets == 1 {
            let mut map: HashMap<u128, (u64, u8)> = HashMap::new();
            let mut valid = 0u64;
            for_each_line(journal, |index, line| {
                if let Ok(ks) = serde_json::from_slice::<KeyStatus>(line) {
                    valid += 1;
                    let cand = (index, code(ks.status));
                    map.entry(key_hash(&ks.key))
                        .and_modify(|cur| {
                            if better(*cur, cand) {
                                *cur = cand
                            }
                        })
                        .or_insert(cand);
                }
            })?;
            *duplicates = valid - map.len() as u64;
            let mut v: Vec<(u64, u8)> = map.into_values().collect();
            v.sort_unstable();
            return Ok(Winners::InMemory(v));
        }

        let name = journal.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let dir = journal.with_file_name(format!(".finalize-{name}-{}", std::process::id()));
        let io = |source| SinkError::Io { path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let winners = Winners::Buckets { dir: dir.clone(), files: Vec::new() };
        // Split (hash, line, status) records into bucket files.
        let mut writers: Vec<BufWriter<File>> = (0..buckets)
            .map(|b| File::create(dir.join(format!("in-{b}"))).map(|f| BufWriter::with_capacity(1 << 16, f)))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        let mut write_err = None;
        for_each_line(journal, |index, line| {
            if let Ok(ks) = serde_json::from_slice::<KeyStatus>(line) {
                let h = key_hash(&ks.key);
                let b = ((h >> 64) as u64 % buckets) as usize;
                let mut rec = [0u8; 25];
                rec[..16].copy_from_slice(&h.to_le_bytes());
                rec[16..24].copy_from_slice(&index.to_le_bytes());
                rec[24] = code(ks.status);
                if let Err(e) = writers[b].write_all(&rec) {
                    write_err.get_or_insert(e);
                }
            }
        })?;
        if let Some(e) = write_err {
            return Err(io(e));
        }
        for w in writers.iter_mut() {
            w.flush().map_err(io)?;
        }
        drop(writers);
        // Resolve each bucket; write its winners sorted by line index.
        let mut files = Vec::with_capacity(buckets as usize);
        for b in 0..buckets {
            let input = dir.join(format!("in-{b}"));
            let mut bytes = Vec::new();
            File::open(&input).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io)?;
            let mut map: HashMap<u128, (u64, u8)> = HashMap::with_capacity(bytes.len() / 25);
            for rec in bytes.chunks_exact(25) {
                let h = u128::from_le_bytes(rec[..16].try_into().expect("16 bytes"));
                let cand = (u64::from_le_bytes(rec[16..24].try_into().expect("8 bytes")), rec[24]);
                map.entry(h)
                    .and_modify(|cur| {
                        if better(*cur, cand) {
                            *cur = cand
                        }
                    })
                    .or_insert(cand);
            }
            *duplicates += (bytes.len() / 25) as u64 - map.len() as u64;
            drop(bytes);
            let mut v: Vec<(u64, u8)> = map.into_values().collect();
            v.sort_unstable();
            let out = dir.join(format!("win-{b}"));
            let mut w = BufWriter::new(File::create(&out).map_err(io)?);
            for (idx, st) in v {
                w.write_all(&idx.to_le_bytes()).map_err(io)?;
                w.write_all(&[st]).map_err(io)?;
            }
            w.flush().map_err(io)?;
            std::fs::remove_file(&input).map_err(io)?;
            files.push(out);
        }
        let mut winners = winners;
        if let Winners::Buckets { files: f, .. } = &mut winners {
            *f = files;
        }
        Ok(winners)
    }

    /// A fresh pass over the winners, in ascending line order.
    pub fn cursor(&self) -> Result<Cursor<'_>, SinkError> {
        match self {
            Winners::InMemory(v) => Ok(Cursor::Memory { v, at: 0 }),
            Winners::Buckets { files, .. } => {
                let mut readers = Vec::with_capacity(files.len());
                let mut heap = BinaryHeap::new();
                for (i, p) in files.iter().enumerate() {
                    let mut r = BufReader::with_capacity(1 << 16, File::open(p).map_err(|source| SinkError::Io { path: p.clone(), source })?);
                    if let Some((idx, st)) = read_one(&mut r) {
                        heap.push(Reverse((idx, st, i)));
                    }
                    readers.push(r);
                }
                Ok(Cursor::Merge { readers, heap })
            }
        }
    }
}

fn read_one(r: &mut BufReader<File>) -> Option<(u64, u8)> {
    let mut buf = [0u8; 9];
    r.read_exact(&mut buf).ok()?;
    Some((u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")), buf[8]))
}

pub enum Cursor<'a> {
    Memory { v: &'a [(u64, u8)], at: usize },
    Merge { readers: Vec<BufReader<File>>, heap: BinaryHeap<Reverse<(u64, u8, usize)>> },
}

impl Cursor<'_> {
    /// The status of line `index` if it is its key's winner. Indices must be asked in
    /// ascending order (as a pass over the journal does).
    pub fn status_at(&mut self, index: u64) -> Option<EntryStatus> {
        match self {
            Cursor::Memory { v, at } => {
                while *at < v.len() && v[*at].0 < index {
                    *at += 1;
                }
                (*at < v.len() && v[*at].0 == index).then(|| status(v[*at].1))
            }
            Cursor::Merge { readers, heap } => loop {
                let Reverse((idx, st, i)) = *heap.peek()?;
                if idx > index {
                    return None;
                }
                heap.pop();
                if let Some(next) = read_one(&mut readers[i]) {
                    heap.push(Reverse((next.0, next.1, i)));
                }
                if idx == index {
                    return Some(status(st));
                }
            },
        }
    }
}
