//! `concurrency.scheduling: prefix_groups`: records whose prompts begin alike are sent one
//! after another, so an inference server's prefix (KV) cache still holds that beginning when
//! the next one arrives. vLLM and SGLang skip the prefill of a cached prefix; interleaving 50
//! system prompts through a cache that holds 8 throws most of that away.
//!
//! Within a window of read-ahead records, the dispatcher drains one group (one prefix key, see
//! [`super::Job::prefix_key`]) before it starts the next; groups start in the order their
//! first record arrived, so no record waits behind more than one window. Results are keyed,
//! not positional: the outputs are the same as without grouping.

use std::collections::{HashMap, VecDeque};

/// Work items buffered by prefix key.
pub struct PrefixGroups<T> {
    window: usize,
    groups: HashMap<u64, VecDeque<T>>,
    /// Keys with buffered items, by the arrival of their oldest one.
    order: VecDeque<u64>,
    current: Option<u64>,
    len: usize,
}

impl<T> PrefixGroups<T> {
    /// Buffers at most `window` items.
    pub fn new(window: usize) -> Self {
        PrefixGroups { window: window.max(1), groups: HashMap::new(), order: VecDeque::new(), current: None, len: 0 }
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.window
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, key: u64, item: T) {
        let group = self.groups.entry(key).or_default();
        if group.is_empty() && self.current != Some(key) {
            self.order.push_back(key);
        }
        group.push_back(item);
        self.len += 1;
    }

    /// The next item: the current group's, else the oldest group's.
    pub fn pop(&mut self) -> Option<T> {
        loop {
            let key = match self.current {
                Some(k) if self.groups.get(&k).is_some_and(|g| !g.is_empty()) => k,
                _ => {
                    let k = self.order.pop_front()?;
                    self.current = Some(k);
                    k
                }
            };
            if let Some(item) = self.groups.get_mut(&key).and_then(VecDeque::pop_front) {
                self.len -= 1;
                if self.groups.get(&key).is_some_and(VecDeque::is_empty) {
                    self.groups.remove(&key);
                }
                return Some(item);
            }
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_drained_before_the_next_starts_in_arrival_order() {
        let mut g = PrefixGroups::new(100);
        for (key, item) in [(1, "a1"), (2, "b1"), (1, "a2"), (3, "c1"), (2, "b2"), (1, "a3")] {
            g.push(key, item);
        }
        let first: Vec<&str> = (0..4).map(|_| g.pop().unwrap()).collect();
        assert_eq!(first, ["a1", "a2", "a3", "b1"]);
        // A record of the group being drained joins it; a new group queues behind the others.
        g.push(2, "b3");
        g.push(4, "d1");
        g.push(1, "a4");
        let rest: Vec<&str> = std::iter::from_fn(|| g.pop()).collect();
        assert_eq!(rest, ["b2", "b3", "c1", "d1", "a4"]);
        assert!(g.is_empty());
    }

    #[test]
    fn the_window_bounds_what_is_held() {
        let mut g = PrefixGroups::new(2);
        g.push(1, 1);
        assert!(!g.is_full());
        g.push(2, 2);
        assert!(g.is_full());
        g.pop();
        assert!(!g.is_full());
    }
}
