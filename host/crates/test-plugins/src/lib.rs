//! Paths of the fixture plugins built from `tests/plugins` for wasm32-wasip2, one constant
//! per fixture (e.g. [`LOOP_FOREVER`]). The build script compiles them; see its docs.

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
