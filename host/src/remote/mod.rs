//! Object storage for inputs, outputs and journals: `s3://bucket/prefix` and `tos://bucket/prefix`
//! (Volcengine TOS through its S3 API), through the `object_store` crate.
//!
//! A task whose paths are on object storage runs against a local staging copy: before the
//! run, input objects are streamed down (only those missing or changed locally) and so is
//! what the output prefix already holds (journals, so a run resumed on another machine sends
//! nothing twice; earlier outputs, so they can be adopted). During the run the journals are
//! uploaded every `MODELCALL_REMOTE_SYNC_SECS` (default 30 s); at the end everything the run
//! wrote is streamed up. Each object is replaced whole (a PUT is atomic), and outputs are
//! rebuilt from the journal, so a kill at any point costs at most the results since the last
//! journal upload (sent again on resume), never a duplicate or a torn file.
//!
//! Credentials come from the standard environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`; for `tos://` also `TOS_ACCESS_KEY`,
//! `TOS_SECRET_KEY`, `TOS_ENDPOINT`, `TOS_REGION`) and are never printed.

mod store;
mod sync;

pub use store::{storage_secrets, RemoteUrl};
pub use sync::{stage, Staged};
