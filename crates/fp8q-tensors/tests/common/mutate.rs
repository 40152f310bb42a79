//! Deterministic mutation of valid files, for testing that readers never panic or run away.
//!
//! Shared by the checkpoint and tensor-file tests of fp8q-tensors. It also holds a global-allocator wrapper that records the largest single
//! allocation, so a test can check that a hostile length was refused before allocating.
#![allow(dead_code)] // each test file uses its own subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// SplitMix64 (the same sequence as the data pipeline's `fp8q_images::rng::Rng`, which this
/// crate sits below), with `below` for these tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Uniform draws in `0..n`.
pub trait Below {
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize;
}

impl Below for Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Lengths a hostile file would declare.
const HUGE: [u64; 7] = [
    0xffff_ffff,
    0x7fff_ffff,
    0x8000_0000,
    1 << 60,
    u64::MAX,
    u64::MAX / 2,
    0x1_0000_0000,
];

/// Apply one random mutation to `data`; returns what was done.
pub fn mutate_once(data: &mut Vec<u8>, rng: &mut Rng) -> String {
    if data.is_empty() {
        data.push(rng.next_u64() as u8);
        return "grow empty".into();
    }
    let at = rng.below(data.len());
    match rng.below(8) {
        0 => {
            let bit = rng.below(8);
            data[at] ^= 1 << bit;
            format!("flip bit {bit} of byte {at}")
        }
        1 => {
            let v = rng.next_u64() as u8;
            data[at] = v;
            format!("byte {at} = {v:#04x}")
        }
        2 => {
            let n = 1 + rng.below(8);
            for i in at..(at + n).min(data.len()) {
                data[i] = rng.next_u64() as u8;
            }
            format!("randomise {n} bytes at {at}")
        }
        3 => {
            data.truncate(at);
            format!("truncate at {at}")
        }
        4 => {
            let n = 1 + rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(at..at, ins);
            format!("insert {n} bytes at {at}")
        }
        5 => {
            let n = (1 + rng.below(16)).min(data.len() - at);
            data.drain(at..at + n);
            format!("delete {n} bytes at {at}")
        }
        6 => {
            let v = HUGE[rng.below(HUGE.len())];
            let width = if rng.below(2) == 0 { 4 } else { 8 };
            let bytes = v.to_le_bytes();
            for i in 0..width {
                if at + i < data.len() {
                    data[at + i] = bytes[i];
                }
            }
            format!("write {v:#x} ({width} bytes) at {at}")
        }
        _ => {
            let from = rng.below(data.len());
            let n = (1 + rng.below(32)).min(data.len() - from);
            let chunk = data[from..from + n].to_vec();
            data.splice(at..at, chunk);
            format!("copy {n} bytes from {from} to {at}")
        }
    }
}

/// `count` mutated copies of `original` (1–3 stacked mutations each), with descriptions.
pub fn mutants(original: &[u8], seed: u64, count: usize) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let mut rng = Rng::new(seed);
    (0..count).map(move |_| {
        let mut d = original.to_vec();
        let k = 1 + rng.below(3);
        let what: Vec<String> = (0..k).map(|_| mutate_once(&mut d, &mut rng)).collect();
        (what.join(", "), d)
    })
}

/// Run `read` on every input; a panic is recorded (with the input's description) instead of
/// unwinding, and all of them are reported at the end.
pub fn assert_no_panics<T, E>(
    label: &str,
    inputs: impl IntoIterator<Item = (String, Vec<u8>)>,
    read: impl Fn(&[u8]) -> Result<T, E>,
) -> (usize, usize) {
    let (mut ok, mut err) = (0, 0);
    let mut panics = Vec::new();
    for (what, data) in inputs {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&data).is_ok())) {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(_) => panics.push(what),
        }
    }
    assert!(
        panics.is_empty(),
        "{label}: {} mutated inputs panicked, e.g. {:?}",
        panics.len(),
        &panics[..panics.len().min(5)]
    );
    (ok, err)
}

/// Every truncation of `original` (all prefixes, or `limit` evenly spread ones if longer).
pub fn truncations(original: &[u8], limit: usize) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let n = original.len();
    let step = n.div_ceil(limit.max(1)).max(1);
    (0..n)
        .step_by(step)
        .map(move |k| (format!("truncate at {k}"), original[..k].to_vec()))
}

/// A global allocator that records the largest single allocation request.
pub struct Tracking;

/// Largest allocation seen so far, in bytes.
pub static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Largest allocation so far.
pub fn largest_allocation() -> usize {
    LARGEST.load(Ordering::Relaxed)
}
