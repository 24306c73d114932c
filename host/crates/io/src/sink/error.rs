//! The error every sink returns (and the journal readers they share), in a room of its own so
//! the readers beside the sinks (`ordered`, `winners`, `grouped`) can name it without importing
//! the sinks themselves.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot write Parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error(transparent)]
    Write(#[from] crate::atomic::WriteError),
}
