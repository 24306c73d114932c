//! A model server's prefix cache, as the simulator counts it: vLLM and SGLang keep the KV
//! cache of recent prompt prefixes, so a request whose prompt starts like a recent one skips
//! that part of the prefill. The simulator keeps the last `capacity` prefixes (least recently
//! used out) and counts how many requests found theirs, which is what `concurrency.scheduling:
//! prefix_groups` on the client side is meant to raise.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// FNV-1a: stable, fast, good enough to spread replies and to key prefixes.
pub fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Bytes of the prompt (its messages' contents, in order) that make up its prefix.
pub const PREFIX_BYTES: usize = 512;

/// The prefix of a prompt given as its messages' contents: the first [`PREFIX_BYTES`] bytes of
/// the contents joined by a newline. The client groups records by the same definition.
pub fn prefix_hash<'a>(contents: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut prefix = Vec::with_capacity(PREFIX_BYTES);
    for (i, c) in contents.into_iter().enumerate() {
        if i > 0 {
            prefix.push(b'\n');
        }
        prefix.extend_from_slice(c.as_bytes());
        if prefix.len() >= PREFIX_BYTES {
            break;
        }
    }
    prefix.truncate(PREFIX_BYTES);
    fnv1a(&prefix, 0x9e37_79b9)
}

/// The last `capacity` prefixes seen, most recent first.
pub struct PrefixCache {
    capacity: usize,
    recent: Mutex<VecDeque<u64>>,
    lookups: AtomicU64,
    hits: AtomicU64,
}

impl PrefixCache {
    pub fn new(capacity: usize) -> Self {
        PrefixCache {
            capacity: capacity.max(1),
            recent: Mutex::new(VecDeque::with_capacity(capacity + 1)),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// Records a request with this prefix; true when it was cached.
    pub fn lookup(&self, prefix: u64) -> bool {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap();
        let hit = match recent.iter().position(|p| *p == prefix) {
            Some(i) => {
                recent.remove(i);
                true
            }
            None => false,
        };
        recent.push_front(prefix);
        recent.truncate(self.capacity);
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// `(lookups, hits)`.
    pub fn counts(&self) -> (u64, u64) {
        (self.lookups.load(Ordering::Relaxed), self.hits.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_prefix_goes_first() {
        let c = PrefixCache::new(2);
        assert!(!c.lookup(1) && !c.lookup(2));
        assert!(c.lookup(1), "still cached");
        assert!(!c.lookup(3), "new");
        assert!(!c.lookup(2), "2 was the least recently used: evicted by 3");
        assert_eq!(c.counts(), (5, 1));
    }

    #[test]
    fn a_prefix_is_the_first_bytes_of_the_contents() {
        let system = "s".repeat(PREFIX_BYTES);
        assert_eq!(prefix_hash([system.as_str(), "one question"]), prefix_hash([system.as_str(), "another"]));
        assert_ne!(prefix_hash(["short system", "one question"]), prefix_hash(["short system", "another"]));
    }
}
