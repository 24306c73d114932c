//! builtin:json-score
