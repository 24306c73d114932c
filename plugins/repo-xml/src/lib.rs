//! builtin:repo-xml
