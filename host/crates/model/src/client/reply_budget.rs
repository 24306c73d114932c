//! A bound on the reply bytes a client holds at once, across all the replies it is reading.
//!
//! `max_response_bytes` bounds one reply (16 MiB by default), but 64 replies in flight may each
//! come close to it: 1 GiB held for parsing. Each reply reads its first [`FREE_PER_REPLY`]
//! bytes freely (the LLM replies of everyday use never need more); past that it reserves what it
//! holds from a shared budget. A reply that finds the budget spent waits (its connection is not
//! read, so TCP holds the sender back), unless it is the largest reply held: that one goes on
//! (past the budget by at most its own `max_response_bytes`), so the replies finish one after
//! another and no set of them can wait on each other. A wait is bounded by the attempt's
//! deadline like any other read. Nothing is refused or sent again for the budget's sake: it
//! costs time, never money.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Bytes a reply reads without reserving from the budget.
pub const FREE_PER_REPLY: u64 = 256 << 10;
/// The bytes the replies of one client hold past their free share, at most (but see the
/// module's doc: the largest reply may pass it).
pub const DEFAULT_BUDGET: u64 = 32 << 20;

/// The budget every client of this process shares (a run's models, pools and audits alike):
/// [`DEFAULT_BUDGET`], or `MODELCALL_REPLY_BUDGET_MB` megabytes.
pub fn process_budget() -> &'static Arc<ReplyBudget> {
    static BUDGET: std::sync::OnceLock<Arc<ReplyBudget>> = std::sync::OnceLock::new();
    BUDGET.get_or_init(|| {
        let limit = std::env::var("MODELCALL_REPLY_BUDGET_MB").ok().and_then(|v| v.trim().parse::<u64>().ok()).map_or(DEFAULT_BUDGET, |mb| mb << 20);
        ReplyBudget::new(limit)
    })
}

#[derive(Debug)]
pub struct ReplyBudget {
    limit: u64,
    state: Mutex<State>,
    released: Notify,
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    used: u64,
    /// (reserved bytes, reply id) of every reply holding a reservation: the last is the largest.
    holders: BTreeSet<(u64, u64)>,
}

impl ReplyBudget {
    pub fn new(limit: u64) -> Arc<ReplyBudget> {
        Arc::new(ReplyBudget { limit, state: Mutex::new(State::default()), released: Notify::new(), next_id: AtomicU64::new(1) })
    }

    /// A reply about to be read.
    pub fn reply(self: &Arc<Self>) -> ReplyHold {
        ReplyHold { budget: self.clone(), id: self.next_id.fetch_add(1, Ordering::Relaxed), received: 0, reserved: 0 }
    }

    /// Bytes reserved now, by every reply of this client.
    pub fn used(&self) -> u64 {
        self.state.lock().unwrap().used
    }
}

/// One reply's share of the budget; released when dropped (the reply parsed, failed or
/// abandoned).
#[derive(Debug)]
pub struct ReplyHold {
    budget: Arc<ReplyBudget>,
    id: u64,
    received: u64,
    reserved: u64,
}

impl ReplyHold {
    /// Counts `n` more bytes of the reply, waiting while the budget is spent and this is not
    /// the largest reply held.
    pub async fn take(&mut self, n: u64) {
        self.received += n;
        let want = self.received.saturating_sub(FREE_PER_REPLY);
        if want <= self.reserved {
            return;
        }
        let more = want - self.reserved;
        loop {
            let released = self.budget.released.notified();
            {
                let mut s = self.budget.state.lock().unwrap();
                // Only the largest reply held (or the first) may pass the budget: the others
                // wait for it, so at most one reply is ever past it.
                let largest = s.holders.last().is_none_or(|&(_, id)| id == self.id);
                if s.used + more <= self.budget.limit || largest {
                    s.holders.remove(&(self.reserved, self.id));
                    self.reserved += more;
                    s.holders.insert((self.reserved, self.id));
                    s.used += more;
                    return;
                }
            }
            released.await;
        }
    }
}

impl Drop for ReplyHold {
    fn drop(&mut self) {
        if self.reserved == 0 {
            return;
        }
        {
            let mut s = self.budget.state.lock().unwrap();
            s.holders.remove(&(self.reserved, self.id));
            s.used -= self.reserved;
        }
        self.budget.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: u64 = 1 << 20;

    #[tokio::test]
    async fn small_replies_take_nothing_and_a_spent_budget_holds_all_but_the_largest() {
        let budget = ReplyBudget::new(4 * MIB);
        let mut small = budget.reply();
        small.take(FREE_PER_REPLY).await;
        assert_eq!(budget.used(), 0, "the free share is not reserved");

        let mut a = budget.reply();
        a.take(FREE_PER_REPLY + 3 * MIB).await;
        assert_eq!(budget.used(), 3 * MIB);
        let mut b = budget.reply();
        b.take(FREE_PER_REPLY + MIB).await;
        assert_eq!(budget.used(), 4 * MIB, "exactly at the limit");
        // b is not the largest: it waits until a is done.
        let waiting = tokio::spawn(async move {
            b.take(MIB).await;
            b
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "b waits while a holds the budget");
        // a, the largest, goes on past the budget.
        a.take(2 * MIB).await;
        assert_eq!(budget.used(), 6 * MIB);
        drop(a);
        let b = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("b goes on once a is released").unwrap();
        assert_eq!(budget.used(), 2 * MIB);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn replies_growing_together_never_wait_on_each_other() {
        // 16 replies of 8 MiB each, in 64 KiB pieces, through a 4 MiB budget: they finish one
        // after another (the largest always goes on), never all waiting.
        let budget = ReplyBudget::new(4 * MIB);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let budget = budget.clone();
            tasks.spawn(async move {
                let mut hold = budget.reply();
                for _ in 0..128 {
                    hold.take(64 << 10).await;
                    tokio::task::yield_now().await;
                }
            });
        }
        let all = async { while tasks.join_next().await.is_some() {} };
        tokio::time::timeout(Duration::from_secs(10), all).await.expect("no deadlock");
        assert_eq!(budget.used(), 0);
    }
}
