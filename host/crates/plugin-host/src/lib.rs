//! Loads and runs modelcall WebAssembly plugins in a sandbox with per-call limits
