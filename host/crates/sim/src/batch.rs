//! The simulated OpenAI Batch API's data: the uploaded files and the batches the simulator
//! holds ([`Store`]), the faults the batch endpoints inject ([`BatchFaults`]), and what they have
//! seen ([`BatchStats`]).
//!
//! [`BatchStats`] counts batches and answers per `custom_id`, so a test can check that no record
//! went into two batches and none was answered twice. The endpoints that read and change this
//! data are in `batch_api`; the data is its own module so the simulator's shared state can hold a
//! [`Store`] without depending on the endpoints.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

/// Faults of the batch endpoints; change them at any time with [`crate::SimServer::set_batch_faults`].
#[derive(Debug, Clone, Default)]
pub struct BatchFaults {
    /// Time from a batch's creation to the start of its processing (while `in_progress`).
    pub completion_delay: Duration,
    /// The next this-many batches expire with `expire_done` of their lines answered.
    pub expire_batches: u32,
    /// Share of lines answered in an expiring batch (the first lines, in file order).
    pub expire_done: f64,
    /// Share of records (chosen by a hash of `custom_id`) whose line fails with `fail_status`: a
    /// 5xx only in the record's first batch, a 4xx in every batch.
    pub fail_rate: f64,
    pub fail_status: u16,
    /// The next this-many uploads get a 500 (the file is not kept).
    pub upload_errors: u32,
    /// The next this-many creates make the batch but drop the connection before answering.
    pub lose_creates: u32,
    /// Batches created after the first `slow_after` wait `slow_delay` instead of
    /// `completion_delay` (when it is not zero): some batches done, others still running.
    pub slow_after: u32,
    pub slow_delay: Duration,
}

/// What the batch endpoints have seen.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub uploads: u64,
    pub batches_created: u64,
    /// Lines per batch, in creation order.
    pub batch_sizes: Vec<usize>,
    /// Batches each `custom_id` was in.
    pub batches_per_record: HashMap<String, u32>,
    /// Successful answers each `custom_id` got.
    pub answers_per_record: HashMap<String, u32>,
    /// `POST /v1/batches/{id}/cancel` calls, and the batch ids they named (in order).
    pub cancels: u64,
    pub cancelled: Vec<String>,
}

impl BatchStats {
    /// `custom_id`s that were in more than one batch.
    pub fn in_two_batches(&self) -> Vec<String> {
        let mut v: Vec<String> = self.batches_per_record.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.clone()).collect();
        v.sort();
        v
    }

    /// `custom_id`s answered more than once.
    pub fn answered_twice(&self) -> Vec<String> {
        let mut v: Vec<String> = self.answers_per_record.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.clone()).collect();
        v.sort();
        v
    }
}

pub(crate) struct SimBatch {
    pub(crate) id: String,
    pub(crate) input_file_id: String,
    pub(crate) endpoint: String,
    pub(crate) metadata: Value,
    pub(crate) created_at: u64,
    pub(crate) status: &'static str,
    pub(crate) output_file_id: Option<String>,
    pub(crate) error_file_id: Option<String>,
    pub(crate) total: usize,
    pub(crate) completed: usize,
    pub(crate) failed: usize,
    pub(crate) cancel: bool,
}

impl SimBatch {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "errors": null,
            "input_file_id": self.input_file_id, "completion_window": "24h", "status": self.status,
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "created_at": self.created_at, "metadata": self.metadata,
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
        })
    }
}

/// The files and batches the simulator holds.
#[derive(Default)]
pub struct Store {
    pub(crate) inner: Mutex<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) next_id: u64,
    pub(crate) files: HashMap<String, Bytes>,
    pub(crate) batches: HashMap<String, SimBatch>,
    /// Batch ids, oldest first.
    pub(crate) order: Vec<String>,
    pub(crate) faults: BatchFaults,
    pub(crate) stats: BatchStats,
}

impl Inner {
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-sim{:06}", self.next_id)
    }
}

impl Store {
    pub fn set_faults(&self, faults: BatchFaults) {
        self.inner.lock().unwrap().faults = faults;
    }

    pub fn faults(&self) -> BatchFaults {
        self.inner.lock().unwrap().faults.clone()
    }

    pub fn stats(&self) -> BatchStats {
        self.inner.lock().unwrap().stats.clone()
    }
}
