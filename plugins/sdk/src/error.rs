//! Errors a plugin returns; the host branches on the kind.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// This record cannot be handled: it goes to the error output, the run goes on.
    InvalidInput,
    /// The plugin's config is wrong: the task stops before any request.
    InvalidConfig,
    /// The plugin does not support this input.
    Unsupported,
    /// A bug or unexpected state inside the plugin.
    Internal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidConfig, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal error",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for Error {}

/// `?` on a JSON error inside `process` means the record was not what the plugin expects.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid_input(e.to_string())
    }
}

#[cfg(target_arch = "wasm32")]
impl From<Error> for crate::base::modelcall::plugin::types::PluginError {
    fn from(e: Error) -> Self {
        use crate::base::modelcall::plugin::types::ErrorKind as K;
        crate::base::modelcall::plugin::types::PluginError {
            kind: match e.kind {
                ErrorKind::InvalidInput => K::InvalidInput,
                ErrorKind::InvalidConfig => K::InvalidConfig,
                ErrorKind::Unsupported => K::Unsupported,
                ErrorKind::Internal => K::Internal,
            },
            message: e.message,
        }
    }
}
