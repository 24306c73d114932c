//! Tests of `loader.rs`.

use super::*;

#[test]
fn allowlist_accepts_our_track_and_quiet_wasi() {
    let plain = ImportPolicy::default();
    assert_eq!(check_import("modelcall:plugin/host@0.1.0", plain, None), Ok(()));
    assert_eq!(check_import("modelcall:plugin/context@0.1.7", plain, None), Ok(()));
    assert_eq!(check_import("wasi:cli/stderr@0.2.6", plain, None), Ok(()));
    assert_eq!(check_import("wasi:io/streams@0.2.0", plain, None), Ok(()));
    assert_eq!(check_import("wasi:filesystem/preopens@0.2.6", plain, None), Ok(()));
    assert_eq!(check_import("wasi:random/random@0.2.6", plain, None), Ok(()));
    assert_eq!(check_import("modelcall:plugin/host@0.2.1", plain, None), Ok(()));
}

#[test]
fn a_component_imports_our_package_on_the_track_of_its_exports_only() {
    let plain = ImportPolicy::default();
    assert_eq!(check_import("modelcall:plugin/host@0.2.0", plain, Some("0.2")), Ok(()));
    assert_eq!(check_import("modelcall:plugin/host@0.1.0", plain, Some("0.2")), Err(Some("0.1.0".into())));
    assert_eq!(check_import("modelcall:plugin/host@0.2.3", plain, Some("0.1")), Err(Some("0.2.3".into())));
    assert_eq!(check_import("wasi:cli/stderr@0.2.6", plain, Some("0.1")), Ok(()));
}

#[test]
fn allowlist_refuses_network_and_strangers() {
    let plain = ImportPolicy::default();
    assert_eq!(check_import("wasi:sockets/tcp@0.2.6", plain, None), Err(None));
    assert_eq!(check_import("wasi:http/outgoing-handler@0.2.6", plain, None), Err(None));
    assert_eq!(check_import("acme:evil/steal@1.0.0", plain, None), Err(None));
    assert_eq!(check_import("bare-function", plain, None), Err(None));
    assert_eq!(check_import("modelcall:plugin/host", plain, None), Err(None));
    assert_eq!(check_import("modelcall:plugin/host@0.9.0", plain, None), Err(Some("0.9.0".into())));
}

#[test]
fn interpreter_runtimes_may_import_sockets_and_nothing_more() {
    let python = ImportPolicy { runtime_sockets: true };
    for i in ["network", "instance-network", "ip-name-lookup", "tcp", "tcp-create-socket", "udp", "udp-create-socket"] {
        assert_eq!(check_import(&format!("wasi:sockets/{i}@0.2.9"), python, None), Ok(()), "{i}");
    }
    assert_eq!(check_import("wasi:http/outgoing-handler@0.2.6", python, None), Err(None));
    assert_eq!(check_import("acme:evil/steal@1.0.0", python, None), Err(None));
    assert!(allowed_list().contains("wasi:sockets/*, denied at run time, for componentize-py components only"), "{}", allowed_list());
}

/// A component preamble, then `sections` as (id, body).
fn component(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"\0asm\x0d\0\x01\0".to_vec();
    for (id, body) in sections {
        out.push(*id);
        let mut n = body.len();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(body);
    }
    out
}

fn custom(name: &str, payload: &[u8]) -> (u8, Vec<u8>) {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    (0, body)
}

#[test]
fn componentize_py_is_recognised_by_its_component_name_section() {
    let runtime = b"\x01\x02libcomponentize_py_runtime.so\x00";
    let big = (1, vec![0u8; 300]); // a multi-byte LEB size before the name section
    let py = component(&[big.clone(), custom("component-name", runtime)]);
    assert_eq!(language_runtime(&py), Some("componentize-py"));
    assert!(ImportPolicy::for_component(&py).runtime_sockets);
    // The name elsewhere (a data segment, another custom section) does not count.
    assert_eq!(language_runtime(&component(&[(1, runtime.to_vec()), custom("producers", runtime)])), None);
    assert_eq!(language_runtime(&component(&[big, custom("component-name", b"\x00libc.so")])), None);
    // A core module, a truncated file, garbage: nothing.
    let mut core = py.clone();
    core[6] = 0;
    assert_eq!(language_runtime(&core), None);
    assert_eq!(language_runtime(&py[..py.len() - 3]), None);
    assert_eq!(language_runtime(b"\0asm"), None);
    assert_eq!(language_runtime(&[0xff; 64]), None);
}

#[test]
fn tracks_follow_wasmtime_semver_matching() {
    assert_eq!(track_of("0.1.0"), "0.1");
    assert_eq!(track_of("0.1.9"), "0.1");
    assert_eq!(track_of("0.2.0"), "0.2");
    assert_eq!(track_of("1.0.0"), "1");
    assert_eq!(track_of("2.3.1"), "2");
}

#[test]
fn track_selection_reads_the_exports() {
    let exports = vec!["modelcall:plugin/score-parser@0.1.0".to_string()];
    let (v, roles) = select_track("p", &exports).unwrap();
    assert_eq!(v.as_deref(), Some("0.1.0"));
    assert_eq!(roles, vec![Role::ScoreParser]);

    let newer_minor = vec!["modelcall:plugin/preprocessor@0.1.4".to_string()];
    assert_eq!(select_track("p", &newer_minor).unwrap().1, vec![Role::Preprocessor]);

    let (v, roles) = select_track("p", &["modelcall:plugin/preprocessor@0.2.0".to_string()]).unwrap();
    assert_eq!((v.as_deref(), roles), (Some("0.2.0"), vec![Role::Preprocessor]));

    let exports = vec!["modelcall:plugin/preprocessor@0.3.0".to_string()];
    let err = select_track("my.wasm", &exports).unwrap_err().to_string();
    assert!(err.contains("my.wasm") && err.contains("API 0.3") && err.contains("supports 0.1, 0.2"), "{err}");

    let mixed = vec!["modelcall:plugin/preprocessor@0.1.0".to_string(), "modelcall:plugin/score-parser@0.2.0".to_string()];
    let err = select_track("p", &mixed).unwrap_err().to_string();
    assert!(err.contains("0.1 and 0.2 (`score-parser`), mixed in one component"), "{err}");

    let exports = vec!["modelcall:plugin/preprocessor@2.0.0".to_string()];
    let err = select_track("p", &exports).unwrap_err().to_string();
    assert!(err.contains("API 2;"), "{err}");

    let (v, roles) = select_track("p", &["wasi:cli/run@0.2.0".to_string()]).unwrap();
    assert!(v.is_none() && roles.is_empty());
}
