//! A set of record keys held as 128-bit hashes: 16 bytes a key whatever the key's length, so
//! resuming or finalizing a run of millions of records needs tens of megabytes, not gigabytes.
//! (A collision needs ~2^64 keys to become likely.)

use std::collections::HashSet;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeySet {
    hashes: HashSet<u128>,
}

/// The 128-bit hash a key is stored under.
pub fn key_hash(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

impl KeySet {
    pub fn insert(&mut self, key: &str) -> bool {
        self.hashes.insert(key_hash(key))
    }
    pub fn remove(&mut self, key: &str) -> bool {
        self.hashes.remove(&key_hash(key))
    }
    pub fn contains(&self, key: &str) -> bool {
        self.hashes.contains(&key_hash(key))
    }
    pub fn len(&self) -> usize {
        self.hashes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

impl<'a> FromIterator<&'a str> for KeySet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut s = KeySet::default();
        for k in iter {
            s.insert(k);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_set_of_strings() {
        let mut s = KeySet::default();
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        assert!(s.contains("a") && !s.contains("b"));
        assert!(s.remove("a"));
        assert!(s.is_empty());
        let t: KeySet = ["x", "y"].into_iter().collect();
        assert_eq!(t.len(), 2);
    }
}
