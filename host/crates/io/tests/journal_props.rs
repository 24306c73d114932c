//! Property test of journal repair: a valid journal followed by any torn or garbled tail opens
//! without panicking, keeps every complete entry, cuts exactly the unreadable tail and takes
//! new entries cleanly afterwards.

use std::time::Duration;

use modelcall_io::{EntryStatus, Journal, JournalEntry};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map};

fn entry(key: &str, ok: bool) -> JournalEntry {
    let mut row = Map::new();
    row.insert("k".into(), json!(key));
    JournalEntry::new(key, if ok { EntryStatus::Ok } else { EntryStatus::Error }, row)
}

fn line_of(e: &JournalEntry) -> Vec<u8> {
    let mut v = serde_json::to_vec(e).unwrap();
    v.push(b'\n');
    v
}

#[derive(Debug, Clone)]
enum Piece {
    Bytes(Vec<u8>),
    Newline,
    /// A whole entry line (with its newline).
    Entry(String, bool),
    /// The first `n` bytes of an entry line.
    Torn(String, bool, usize),
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 1..8).prop_map(String::from_iter)
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Piece::Bytes),
        2 => Just(Piece::Newline),
        2 => (key(), any::<bool>()).prop_map(|(k, ok)| Piece::Entry(k, ok)),
        3 => (key(), any::<bool>(), 0usize..200).prop_map(|(k, ok, n)| Piece::Torn(k, ok, n)),
    ]
}

#[derive(Deserialize)]
struct KeyStatus {
    key: String,
    #[allow(dead_code)]
    status: EntryStatus,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_garbled_tail_is_repaired_and_keeps_every_complete_entry(
        prefix in prop::collection::vec((key(), any::<bool>()), 0..12),
        tail in prop::collection::vec(piece(), 0..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (j, _) = Journal::open(&path, Duration::from_millis(1)).unwrap();
        for (k, ok) in &prefix {
            j.append(entry(k, *ok)).unwrap();
        }
        j.close().unwrap();
        let mut content = std::fs::read(&path).unwrap();
        let prefix_len = content.len();
        for p in &tail {
            match p {
                Piece::Bytes(b) => content.extend_from_slice(b),
                Piece::Newline => content.push(b'\n'),
                Piece::Entry(k, ok) => content.extend_from_slice(&line_of(&entry(k, *ok))),
                Piece::Torn(k, ok, n) => {
                    let line = line_of(&entry(k, *ok));
                    content.extend_from_slice(&line[..(*n).min(line.len() - 1)]);
                }
            }
        }
        std::fs::write(&path, &content).unwrap();

        // What must survive: every complete line that reads as an entry; the file is cut right
        // after the last of them (never into the valid prefix).
        let mut kept_keys = Vec::new();
        let mut good_end = 0usize;
        let mut at = 0usize;
        while let Some(nl) = content[at..].iter().position(|b| *b == b'\n') {
            let line = &content[at..at + nl + 1];
            at += nl + 1;
            if let Ok(e) = serde_json::from_slice::<KeyStatus>(line) {
                kept_keys.push(e.key);
                good_end = at;
            }
        }
        prop_assert!(good_end >= prefix_len);
        let dropped_complete = content[good_end..].iter().filter(|b| **b == b'\n').count() as u64;
        let dropped = dropped_complete + u64::from(content.last().is_some_and(|b| *b != b'\n'));
        let unreadable = content[..good_end].iter().filter(|b| **b == b'\n').count() as u64 - kept_keys.len() as u64;

        let (j, state) = Journal::open(&path, Duration::from_millis(1)).unwrap();
        for k in &kept_keys {
            prop_assert!(state.done_ok.contains(k) || state.failed.contains(k), "lost {:?}", k);
        }
        prop_assert_eq!(state.torn_lines_dropped, dropped, "every dropped line is counted");
        prop_assert_eq!(state.unreadable_lines, unreadable, "only lines kept are unreadable");
        let repaired = std::fs::read(&path).unwrap();
        prop_assert_eq!(&repaired[..], &content[..good_end]);

        // Appending after the repair gives a clean journal.
        j.append(entry("fresh", true)).unwrap();
        j.close().unwrap();
        let (_j, again) = Journal::open(&path, Duration::from_millis(1)).unwrap();
        prop_assert!(again.done_ok.contains("fresh"));
        prop_assert_eq!(again.torn_lines_dropped, 0);
        prop_assert_eq!(again.unreadable_lines, state.unreadable_lines);
        for k in &kept_keys {
            prop_assert!(again.done_ok.contains(k) || again.failed.contains(k), "lost {:?} after append", k);
        }
        let mut want = content[..good_end].to_vec();
        want.extend_from_slice(&line_of(&entry("fresh", true)));
        prop_assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
