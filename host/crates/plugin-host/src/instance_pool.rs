//! A pool of warm plugin instances, generic over what an instance is, so its policy is
//! tested without any wasm:
//!
//! - a caller checks an instance out ([`InstancePool::checkout`]); with none idle, a new one
//!   is spawned for it, so there is one warm instance per concurrently calling thread;
//! - after a healthy call the instance goes back, until it has served `max_calls` calls;
//! - after a trap the instance is dropped, and `max_consecutive_traps` traps in a row (no
//!   healthy call in between, on any thread) trip the breaker: the pool empties and every
//!   later checkout answers [`Checkout::Disabled`];
//! - a budget trap (fuel, deadline, memory, output size) on an outsized input (see
//!   [`InstancePool::is_outsized`]) is that input's failure, not the plugin's: the instance is
//!   dropped but the breaker's count is left as it was ([`Verdict::TrappedOnOutsizedInput`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

pub(crate) struct InstancePool<I> {
    idle: Mutex<Vec<Lease<I>>>,
    max_calls: u32,
    max_consecutive_traps: u32,
    consecutive_traps: AtomicU32,
    disabled: AtomicBool,
    /// The largest input (bytes) a call has handled without trapping.
    largest_healthy_input: AtomicU64,
}

/// An input at most this large is always ordinary (see [`InstancePool::is_outsized`]).
pub(crate) const ORDINARY_INPUT_FLOOR: u64 = 64 * 1024;
/// An input more than this many times the largest one handled healthily is outsized.
pub(crate) const OUTSIZED_FACTOR: u64 = 4;

/// An instance checked out of the pool, with the calls it has served.
pub(crate) struct Lease<I> {
    pub instance: I,
    calls: u32,
    /// Spawned for this checkout rather than taken warm from the pool.
    pub fresh: bool,
}

/// What [`InstancePool::checkout`] gives.
pub(crate) enum Checkout<I, E> {
    Ready(Lease<I>),
    /// Spawning a new instance failed with `E`; the caller decides whether that is a trap.
    SpawnFailed(E),
    /// The breaker has tripped after this many consecutive traps.
    Disabled {
        consecutive_traps: u32,
    },
}

/// How a call on a leased instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The call returned (an error the plugin returned itself counts as healthy).
    Healthy,
    /// The call trapped or returned something the host refused: discard the instance.
    Trapped,
    /// The call ran out of a budget on an outsized input: discard the instance, but the trap
    /// is that input's failure and does not count towards the breaker (nor reset it).
    TrappedOnOutsizedInput,
}

impl<I> InstancePool<I> {
    pub(crate) fn new(max_calls: u32, max_consecutive_traps: u32) -> Self {
        InstancePool {
            idle: Mutex::new(Vec::new()),
            max_calls,
            max_consecutive_traps,
            consecutive_traps: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
            largest_healthy_input: AtomicU64::new(0),
        }
    }

    /// Notes that a call on an input of `bytes` bytes did not trap.
    pub(crate) fn note_healthy_input(&self, bytes: u64) {
        self.largest_healthy_input.fetch_max(bytes, Ordering::Relaxed);
    }

    /// Whether an input of `bytes` bytes is outsized: over [`ORDINARY_INPUT_FLOOR`] and more
    /// than [`OUTSIZED_FACTOR`] times the largest input handled without a trap so far. A budget
    /// trap on such an input says more about the input than about the plugin.
    pub(crate) fn is_outsized(&self, bytes: u64) -> bool {
        let ordinary = self.largest_healthy_input.load(Ordering::Relaxed).saturating_mul(OUTSIZED_FACTOR).max(ORDINARY_INPUT_FLOOR);
        bytes > ordinary
    }

    /// Puts an instance that has served no call yet (e.g. the one built at load) in the pool.
    pub(crate) fn seed(&self, instance: I) {
        self.idle.lock().unwrap().push(Lease { instance, calls: 0, fresh: false });
    }

    /// A warm instance, or a new one from `spawn` when none is idle.
    pub(crate) fn checkout<E>(&self, spawn: impl FnOnce() -> Result<I, E>) -> Checkout<I, E> {
        if self.is_disabled() {
            return Checkout::Disabled { consecutive_traps: self.consecutive_traps() };
        }
        let idle = self.idle.lock().unwrap().pop();
        match idle {
            Some(mut lease) => {
                lease.fresh = false;
                Checkout::Ready(lease)
            }
            None => match spawn() {
                Ok(instance) => Checkout::Ready(Lease { instance, calls: 0, fresh: true }),
                Err(e) => Checkout::SpawnFailed(e),
            },
        }
    }

    /// Returns a lease after its call: a healthy instance goes back to the pool unless it has
    /// served its quota; a trapped one is dropped and counts towards the breaker. Returns
    /// true if this trap tripped the breaker.
    pub(crate) fn release(&self, mut lease: Lease<I>, verdict: Verdict) -> bool {
        match verdict {
            // Once tripped, the pool keeps nothing, and the count stays what tripped it.
            _ if self.is_disabled() => false,
            Verdict::Healthy => {
                self.consecutive_traps.store(0, Ordering::Relaxed);
                lease.calls += 1;
                if lease.calls < self.max_calls {
                    self.idle.lock().unwrap().push(lease);
                }
                false
            }
            Verdict::Trapped => {
                drop(lease);
                self.note_trap()
            }
            Verdict::TrappedOnOutsizedInput => {
                drop(lease);
                false
            }
        }
    }

    /// Counts a trap that happened without a lease (e.g. `init` trapping on a new instance).
    /// Returns true if this trap tripped the breaker.
    pub(crate) fn note_trap(&self) -> bool {
        let n = self.consecutive_traps.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.max_consecutive_traps {
            return false;
        }
        let tripped = !self.disabled.swap(true, Ordering::Relaxed);
        self.clear();
        tripped
    }

    /// True once the breaker has tripped; it stays tripped.
    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    pub(crate) fn consecutive_traps(&self) -> u32 {
        self.consecutive_traps.load(Ordering::Relaxed)
    }

    /// Drops every idle instance.
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traps_on_outsized_inputs_neither_count_nor_reset() {
        let pool = InstancePool::new(10, 2);
        let mut next = 0;
        assert!(!pool.is_outsized(ORDINARY_INPUT_FLOOR));
        assert!(pool.is_outsized(ORDINARY_INPUT_FLOOR + 1));
        pool.note_healthy_input(100_000);
        assert!(!pool.is_outsized(400_000));
        assert!(pool.is_outsized(400_001));
        let l = take(&pool, &mut next);
        pool.release(l, Verdict::Trapped);
        for _ in 0..10 {
            let l = take(&pool, &mut next);
            assert!(!pool.release(l, Verdict::TrappedOnOutsizedInput));
        }
        assert!(!pool.is_disabled());
        assert_eq!(pool.consecutive_traps(), 1);
        let l = take(&pool, &mut next);
        assert!(pool.release(l, Verdict::Trapped), "ordinary traps still trip it");
    }

    /// Checks out (spawning `next` if needed) and returns `(instance, fresh)`.
    fn take(pool: &InstancePool<u32>, next: &mut u32) -> Lease<u32> {
        match pool.checkout::<()>(|| {
            *next += 1;
            Ok(*next)
        }) {
            Checkout::Ready(l) => l,
            _ => panic!("expected an instance"),
        }
    }

    #[test]
    fn instances_are_reused_until_their_quota() {
        let pool = InstancePool::new(2, 5);
        pool.seed(0);
        let mut next = 0;
        let mut seen = vec![];
        for _ in 0..5 {
            let l = take(&pool, &mut next);
            seen.push((l.instance, l.fresh));
            pool.release(l, Verdict::Healthy);
        }
        assert_eq!(seen, vec![(0, false), (0, false), (1, true), (1, false), (2, true)]);
    }

    #[test]
    fn concurrent_checkouts_get_separate_instances() {
        let pool = InstancePool::new(100, 5);
        let mut next = 0;
        let a = take(&pool, &mut next);
        let b = take(&pool, &mut next);
        assert_ne!(a.instance, b.instance);
        pool.release(a, Verdict::Healthy);
        pool.release(b, Verdict::Healthy);
        assert_eq!(pool.idle.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_trapped_instance_is_replaced() {
        let pool = InstancePool::new(100, 5);
        let mut next = 0;
        let l = take(&pool, &mut next);
        pool.release(l, Verdict::Trapped);
        let l = take(&pool, &mut next);
        assert_eq!((l.instance, l.fresh), (2, true));
        assert_eq!(pool.consecutive_traps(), 1);
        pool.release(l, Verdict::Healthy);
        assert_eq!(pool.consecutive_traps(), 0, "a healthy call resets the count");
    }

    #[test]
    fn consecutive_traps_trip_the_breaker_for_good() {
        let pool = InstancePool::new(100, 3);
        pool.seed(0);
        let mut next = 0;
        let idle = take(&pool, &mut next);
        assert!(!pool.note_trap());
        let l = take(&pool, &mut next);
        pool.release(l, Verdict::Trapped);
        assert!(!pool.is_disabled());
        assert!(pool.note_trap(), "the third trap in a row trips it");
        assert!(pool.is_disabled());
        assert!(!pool.note_trap(), "it trips once");
        // An instance still out when the breaker tripped is not taken back.
        pool.release(idle, Verdict::Healthy);
        assert!(matches!(pool.checkout::<()>(|| Ok(9)), Checkout::Disabled { consecutive_traps: 4 }));
        assert!(pool.idle.lock().unwrap().is_empty());
    }

    #[test]
    fn spawn_failures_are_passed_on() {
        let pool = InstancePool::<u32>::new(100, 3);
        assert!(matches!(pool.checkout(|| Err("no")), Checkout::SpawnFailed("no")));
        assert_eq!(pool.consecutive_traps(), 0, "the caller decides whether it counts");
    }
}
