//! builtin:triplet-filter
