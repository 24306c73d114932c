#[test]
fn scratch() {
    for y in ["a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", "a: 1\na: 2\n", "a: {x: 1, x: 2}\n", "a: &x 1\nb: *x\nb: 2\n", "? a\n: 1\na: 2\n", "\"a\": 1\na: 2\n", "1: a\n'1': b\n"] {
        let r: Result<serde_yaml::Value, _> = serde_yaml::from_str(y);
        match r { Ok(v) => println!("{y:?} OK {v:?}"), Err(e) => println!("{y:?} ERR {e} loc={:?}", e.location().map(|l| (l.line(), l.column()))) }
    }
}
