//! builtin:github-raw-code
