//! The state one running simulator shares across its connections: options, scripted replies,
//! request and fault counters, the fault thresholds, the requests in flight, the prefix cache and
//! the Batch API's store.
//!
//! Its own module because the server builds it and every endpoint (chat, Batch API) reads it;
//! keeping it apart from all of them lets each endpoint depend on the state alone.

use std::sync::atomic::AtomicU64;

use crate::batch::Store;
use crate::options::{FaultKind, SimOptions};
use crate::prefix_cache::PrefixCache;
use crate::reply::ReplyRules;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) http2: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) faults: [AtomicU64; 6],
}

pub(crate) struct State {
    pub(crate) opts: SimOptions,
    /// The `replies=FILE` rules, read at start.
    pub(crate) rules: Option<ReplyRules>,
    pub(crate) counters: Counters,
    /// Thresholds on a uniform draw in [0,1): fault i applies below cumulative[i].
    pub(crate) cumulative: Vec<(f64, FaultKind)>,
    /// Chat requests being answered now (for `capacity`).
    pub(crate) in_flight: AtomicU64,
    pub(crate) prefix_cache: Option<PrefixCache>,
    /// The files and batches of the Batch API (see [`crate::batch`]).
    pub(crate) batches: Store,
}
