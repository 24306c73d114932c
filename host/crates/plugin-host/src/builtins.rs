//! Plugins embedded in the binary, addressable as `builtin:<name>`: every crate under
//! `plugins/` except the SDK, compiled to wasm32-wasip2 by this crate's build script.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Names of the embedded plugins, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}

/// The component bytes of a built-in.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
