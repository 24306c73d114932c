//! The host-side memory of one tokenizer host call on 10 MB of one repeated character
//! (a single BPE pre-token): tokenized in one piece it took ~520 MB; in chunks it must stay
//! near the size of the text itself. Its own test binary, with one test, so the counting
//! allocator sees nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use modelcall_plugin_host::{Limits, PluginRuntime, PluginSource, PluginSpec, PreprocessInput, PreprocessOutcome, Role};
use modelcall_test_plugins as fx;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes in use and their high-water mark.
struct Counting;

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_tokenizer_host_call_on_10_mb_stays_within_a_memory_budget() {
    let rt = PluginRuntime::new().expect("engine");
    let mut spec = PluginSpec::new(PluginSource::Path(fx::TOKENIZER_BOMB.into()), Role::Preprocessor);
    // Time enough to tokenize all 10 MB: this test is about memory, not the deadline.
    spec.limits = Limits { timeout_ms: 120_000, ..Limits::default() };
    let p = rt.load(spec).unwrap_or_else(|e| panic!("{e}"));

    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = p.preprocess("count", 1, PreprocessInput::Record(r#"{"attack":"count"}"#.into()));
    let peak = PEAK.load(Ordering::Relaxed) - base;
    eprintln!("host memory of the call: {:.1} MiB at the peak", peak as f64 / (1 << 20) as f64);

    // "a" x 8 is one o200k token: the chunked count equals the count of the whole text.
    assert_eq!(r.unwrap(), PreprocessOutcome::keep_records(vec![r#"{"tokens":1310720}"#.into()]));
    let text = 10 * 1024 * 1024;
    assert!(peak < text + 16 * 1024 * 1024, "the host call peaked at {} MiB of host memory", peak >> 20);
}
