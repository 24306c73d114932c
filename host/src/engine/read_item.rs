//! What the reader hands on for each input line ([`ReadItem`]: work, a bad line, or a counted
//! reason not to send it) and what it reads by ([`ReadOptions`]): shared by the reader, the
//! resume decisions and the collector.

use modelcall_config::task::DuplicateIds;
use modelcall_io::{BadLine, MadeFrom};

use super::job::JobInput;

pub enum ReadItem {
    /// A record to send. `made` is what its result will be made from (journaled with it);
    /// `retire` says why an earlier result of the key no longer counts (its input or settings
    /// changed), so the collector voids it before journaling the new one.
    Work {
        key: String,
        file: usize,
        line: u64,
        seq: u64,
        input: JobInput,
        made: MadeFrom,
        retire: Option<&'static str>,
    },
    Bad {
        key: String,
        bad: BadLine,
    },
    AlreadyDone,
    /// Its result was written by another tool and adopted (see [`super::adopt`]).
    Adopted,
    /// Failed permanently in an earlier run (a rejected request, an invalid record); its error
    /// row stays, and it is sent again only with `--retry-failed`.
    FailedBefore,
    DebugLimited,
    /// `retry_mode`: not listed in the error output, so not sent; `modelcall reparse`: not
    /// sent (it sends nothing).
    NotRetried,
    /// A record whose id was seen before in the unit; `skipped` when it is left out
    /// (`on_duplicate_id: skip`), else it is processed under its ordinal key as well.
    DuplicateId {
        skipped: bool,
    },
    /// The file could not be read further (a truncated archive, an I/O error).
    SourceFailed {
        key: String,
        file: String,
        message: String,
    },
}

/// How a unit's records are keyed and selected.
#[derive(Clone, Default)]
pub struct ReadOptions {
    /// Id fields tried in order (content hash when none is present).
    pub key_fields: Vec<String>,
    /// Work items per record (generation with `n: k`): keys `key#0..k-1`.
    pub samples_per_record: u32,
    /// At most this many work items (debug limits).
    pub max_items: Option<u64>,
    /// What a repeated id does (`options.on_duplicate_id`).
    pub on_duplicate_id: DuplicateIds,
    /// Send records that failed permanently in an earlier run again (`--retry-failed`).
    pub retry_failed: bool,
    /// Lines longer than this are `record_too_large` (default: the io crate's).
    pub max_record_bytes: Option<usize>,
    /// Match records to results another tool wrote (see [`super::adopt`]); `None`: never.
    pub adopt: Option<super::adopt::RefKeyRule>,
    /// A hash of what shapes this stage's results besides the input (plugins and their config,
    /// the model and its request settings); journaled with each result.
    pub settings: Option<super::settings::Settings>,
    /// What a result made under other settings gets.
    pub other_settings: OtherSettings,
    /// `retry_mode`: send exactly the records the error output lists, nothing else.
    pub only_failed: bool,
    /// A hash of the score parser (plugin and config), journaled with each result: a result
    /// read by another parser has its stored replies parsed again.
    pub parser: Option<u64>,
    /// `modelcall reparse`: re-parse every stored reply (whatever parser read it), send nothing.
    pub offline: bool,
    /// Warn once per unit when the records of a file have none of `key_fields` (a user-named
    /// `id_field` no record has: the records are keyed by content hash instead).
    pub warn_missing_id: bool,
}

/// The retire reason of a result whose stored replies are parsed again (not a change of its
/// input: not counted as `changed`).
pub const REPARSED: &str = "its score parser changed";

impl ReadOptions {
    /// The hash journaled with each result (0: a stage with no settings of its own).
    pub fn settings_hash(&self) -> u64 {
        self.settings.as_ref().map_or(0, |s| s.hash)
    }
}

/// What a result made under other settings than this run's gets on resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtherSettings {
    /// Kept as done: `--keep-existing`, or a check before the run found none.
    #[default]
    Keep,
    /// Sent again: `--redo-changed`, and always for a stage that costs nothing (preprocessing).
    Redo,
}
