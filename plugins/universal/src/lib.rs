//! builtin:universal
