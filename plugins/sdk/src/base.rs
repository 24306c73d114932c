//! Bindings of the imports shared by every plugin kind (types, call context, host functions).
//! Each kind's bindings reuse these through wit-bindgen's `with:`, so authors see one set of
//! types whatever kinds they build. The contract is the crate's `wit/`: in the repository a link
//! to the workspace's `wit/`, so the SDK and the host can never read different copies of it; in
//! the packaged (and vendored) crate, a copy of it.

wit_bindgen::generate!({
    path: "wit",
    world: "imports",
    generate_all,
});
