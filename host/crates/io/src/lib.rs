//! Streaming dataset sources and sinks (JSONL, gz, zst, Parquet) and the exactly-once journal.
//!
//! - [`source`]: read records one at a time, turning every bad line into a typed item instead
//!   of an error that stops the stream;
//! - [`key`]: the stable identity of a record (id field, else content hash + duplicate ordinal);
//! - [`journal`]: the append-only, fsync'd record of results that makes resume exact;
//! - [`sink`]: turning a journal into the user-facing output and error files, atomically.

pub mod atomic;
pub mod bad_line;
pub mod grouped;
pub mod journal;
pub mod key;
pub mod keyset;
pub mod listing;
pub mod lock;
pub mod naming;
pub mod ordered;
pub mod shard_plan;
pub mod sink;
pub mod source;
mod winners;

pub use atomic::{sweep_temp_files, write_atomically, AtomicFile, WriteError};
pub use bad_line::BadLine;
pub use grouped::{finalize_grouped, finalize_records, GroupedStats, RecordsTarget};
pub use journal::{EntryStatus, Journal, JournalEntry, JournalError, JournalState, MadeFrom};
pub use key::{internal_key, is_internal_key, AssignedKey, KeyAssigner};
pub use keyset::KeySet;
pub use listing::list_input_files;
pub use lock::{LockError, OutputLock};
pub use naming::{input_stem, FilePaths, Naming};
pub use shard_plan::{PlanError, ShardPlan};
pub use sink::{finalize, finalize_ordered, FinalizeStats, OutputFormat, SinkError};
pub use source::{is_supported_input, open_source, BadLineCause, SourceError, SourceItem};
pub use source::{open_slice, open_source_with, parse_record, ByteCounter, Slice, SourceOptions, DEFAULT_MAX_RECORD_BYTES, MAX_DEPTH};
