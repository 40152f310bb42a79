//! `fp8q export` streams: its peak memory is bounded by the largest tensor, not the checkpoint.
//! One test in its own process, because the peak is read with `getrusage(RUSAGE_CHILDREN)`,
//! the largest resident size of any child this process has waited for.
#![cfg(target_os = "linux")]

use fp8q_tensors::safetensors_stream::{StreamPlan, StreamWriter};
use safetensors::Dtype;

mod common;
use common::{fp8q, tmpdir};

/// The largest resident set, in bytes, of the children waited for so far.
fn children_peak() -> u64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    assert_eq!(rc, 0);
    u.ru_maxrss as u64 * 1024
}

/// A bf16 checkpoint of `n` weights of `rows × cols`, written a row at a time: the peak a child
/// reports starts at this process's own (the child's resident-size high-water mark begins as
/// its parent's), so this process never holds a weight.
fn write_model(path: &std::path::Path, n: usize, rows: usize, cols: usize) {
    let mut plan = StreamPlan::default();
    for t in 0..n {
        plan.push(format!("layers.{t}.mlp.weight"), Dtype::BF16, vec![rows, cols])
            .unwrap();
    }
    let mut w = StreamWriter::create(path, &plan, &Default::default()).unwrap();
    let mut row = Vec::with_capacity(cols * 2);
    for t in 0..n {
        for r in 0..rows {
            row.clear();
            row.extend((0..cols).flat_map(|c| {
                let i = r * cols + c;
                let v = (((i * 7919 + t * 104_729) % 2003) as f32 - 1001.0) / 300.0;
                half::bf16::from_f32(v).to_le_bytes()
            }));
            w.write_piece(&format!("layers.{t}.mlp.weight"), &row).unwrap();
        }
    }
    w.finish().unwrap();
}

#[test]
fn peak_memory_is_bounded_by_the_largest_tensor_not_the_file() {
    let dir = tmpdir("export-memory");
    let (small, big) = (dir.join("small.safetensors"), dir.join("big.safetensors"));
    write_model(&small, 1, 16, 64);
    // eight weights of 16 MiB each: a 128 MiB checkpoint
    let (rows, cols) = (2048, 4096);
    let largest = (rows * cols * 2) as u64;
    write_model(&big, 8, rows, cols);
    let run = |input: &std::path::Path, format: &str, out: &str| {
        let out = dir.join(out);
        let o = fp8q(&[
            "export",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        children_peak()
    };
    // the process itself (code, threads, the pieces' buffers are not yet full)
    let base = run(&small, "float8_e4m3fn", "small-out");
    // a piece in f32, its values and its codes (1 Mi values), and the block scales
    let pieces = 12u64 << 20;
    for format in ["float8_e4m3fn", "mxfp4", "int8"] {
        let peak = run(&big, format, &format!("big-{format}"));
        let bound = base + 2 * largest + pieces;
        assert!(
            peak <= bound,
            "{format}: peak {} MiB above the process ({} MiB) + 2 × the largest tensor ({} MiB) + pieces",
            peak >> 20,
            base >> 20,
            largest >> 20
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
