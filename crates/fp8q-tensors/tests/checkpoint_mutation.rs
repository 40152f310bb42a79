//! Many mutated copies of valid checkpoints (zip `.pth`, legacy `.pth`, safetensors): every read
//! returns `Ok` or `Err` — a panic fails the test, a stack overflow or a failed allocation aborts
//! it — and no single allocation exceeds [`ALLOC_LIMIT`] (declared lengths are checked first).

#[path = "common/mutate.rs"]
mod mutate;

use std::io::{Read, Write};

use fp8q_tensors::checkpoint::Checkpoint;
use mutate::{assert_no_panics, largest_allocation, mutants, truncations, Below, Rng};

#[global_allocator]
static ALLOC: mutate::Tracking = mutate::Tracking;

/// The element budget of a tiny file is ~2^24 `f32` (64 MiB); nothing may ask for more.
const ALLOC_LIMIT: usize = 80 << 20;

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/checkpoints")
        .join(name);
    std::fs::read(p).unwrap()
}

fn read(bytes: &[u8]) -> Result<usize, String> {
    Checkpoint::from_bytes(bytes).map(|t| t.len())
}

fn fuzz_raw(name: &str, seed: u64, count: usize) {
    fuzz(name, seed, count, true)
}

/// `valid`: whether the original reads (the refused fixtures, e.g. a whole pickled model, are
/// mutated too: their error paths must not panic either).
fn fuzz(name: &str, seed: u64, count: usize, valid: bool) {
    let data = fixture(name);
    assert_eq!(read(&data).is_ok(), valid, "{name}");
    let inputs = mutants(&data, seed, count).chain(truncations(&data, 2000));
    let (ok, err) = assert_no_panics(name, inputs, read);
    eprintln!("{name}: {ok} mutants read, {err} refused");
    assert!(err > 0, "{name}: mutations must be noticed");
    assert!(
        largest_allocation() <= ALLOC_LIMIT,
        "{name}: an allocation of {} bytes",
        largest_allocation()
    );
}

#[test]
fn legacy_mutants() {
    fuzz_raw("tensors_legacy.pth", 1, 10000);
    fuzz_raw("tensors_legacy_p4.pth", 2, 6000);
    fuzz_raw("views_legacy_crafted.pth", 3, 6000);
    fuzz_raw("train_imagenet_legacy.pth.tar", 4, 6000);
    fuzz_raw("tensors_legacy_p1.pth", 8, 6000);
    fuzz("whole_module_legacy.pth", 9, 4000, false);
}

#[test]
fn zip_mutants() {
    fuzz_raw("tensors_zip.pth", 5, 6000);
    fuzz_raw("train_imagenet_zip.pth.tar", 6, 4000);
    fuzz_raw("tensors_zip_p5.pth", 13, 3000);
    fuzz_raw("compiled_zip.pth", 14, 3000);
    fuzz("quantized_zip.pth", 15, 3000, false);
    fuzz("torchscript.pt", 16, 3000, false);
}

#[test]
fn safetensors_mutants() {
    fuzz_raw("tensors.safetensors", 7, 10000);
}

/// Byte mutations of a zip mostly break its CRCs; to reach the pickle and storage checks
/// behind them, mutate one entry (usually `data.pkl`) and re-zip with correct CRCs.
#[test]
fn zip_entry_mutants() {
    for (name, seed) in [
        ("tensors_zip.pth", 11u64),
        ("train_imagenet_zip.pth.tar", 12),
        ("compiled_zip.pth", 17),
        ("whole_module_wrapped_zip.pth", 18),
    ] {
        let entries = zip_entries(name);
        let pkl = entries.iter().position(|(n, _)| n.ends_with("/data.pkl")).unwrap();
        let mut rng = Rng::new(seed);
        let inputs: Vec<(String, Vec<u8>)> = (0..6000)
            .map(|_| {
                let which = if rng.below(4) == 0 {
                    rng.below(entries.len())
                } else {
                    pkl
                };
                let mut d = entries[which].1.clone();
                let what = (0..1 + rng.below(3))
                    .map(|_| mutate::mutate_once(&mut d, &mut rng))
                    .collect::<Vec<_>>()
                    .join(", ");
                (format!("{}: {what}", entries[which].0), rezip(&entries, which, &d))
            })
            .collect();
        let (ok, err) = assert_no_panics(name, inputs, read);
        eprintln!("{name} (entries): {ok} mutants read, {err} refused");
        assert!(err > 0, "{name}: mutations must be noticed");
        assert!(ok > 0 || name.starts_with("whole"), "{name}: some mutants must read");
        assert!(
            largest_allocation() <= ALLOC_LIMIT,
            "an allocation of {} bytes",
            largest_allocation()
        );
    }
}

/// Pickles mutated inside a legacy stream, with the stream's framing intact: random opcodes
/// spliced into the object pickle.
#[test]
fn random_opcode_soup() {
    let header = {
        let full = fixture("tensors_legacy.pth");
        // magic (15 bytes) + protocol (6) + the sys_info pickle: everything up to its STOP
        let sys_end = 21 + full[21..].windows(2).position(|w| w == b"u.").unwrap() + 2;
        full[..sys_end].to_vec()
    };
    let ops: &[u8] = b"(0123NJKM\x88\x89\x8a\x8bGX\x8c\x8dUTCB\x8e\x96)t\x85\x86\x87]laed}su\x8f\x90\x91qrp\x94hjgc\x93R\x81\x92bQP.";
    let mut rng = Rng::new(99);
    let inputs: Vec<(String, Vec<u8>)> = (0..50000)
        .map(|i| {
            let mut b = header.clone();
            b.extend(b"\x80\x02");
            for _ in 0..rng.below(64) {
                b.push(ops[rng.below(ops.len())]);
                for _ in 0..rng.below(3) {
                    b.push(rng.next_u64() as u8);
                }
            }
            (format!("soup {i}"), b)
        })
        .collect();
    let (_, err) = assert_no_panics("opcode soup", inputs, read);
    assert!(err > 0);
    assert!(
        largest_allocation() <= ALLOC_LIMIT,
        "an allocation of {} bytes",
        largest_allocation()
    );
}

/// Every position of small files overwritten with boundary values (one byte, or a 4- or 8-byte
/// little-endian integer): the sizes, strides, offsets and lengths that random mutation rarely
/// hits exactly. Overflow checks are on in tests, so an unchecked multiplication panics here.
#[test]
fn exhaustive_boundary_overwrites() {
    const BYTES: [u8; 5] = [0x00, 0x01, 0x7f, 0x80, 0xff];
    const WORDS: [u64; 6] = [0, 1 << 31, 1 << 32, 1 << 40, 1 << 62, u64::MAX];
    for name in [
        "views_legacy_crafted.pth",
        "tensors_legacy_p1.pth",
        "tensors_legacy.pth",
        "tensors.safetensors",
    ] {
        let data = fixture(name);
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        for at in 0..data.len() {
            for b in BYTES {
                let mut d = data.clone();
                d[at] = b;
                inputs.push((format!("byte {at} = {b:#x}"), d));
            }
            for w in WORDS {
                for width in [4, 8] {
                    if at + width <= data.len() {
                        let mut d = data.clone();
                        d[at..at + width].copy_from_slice(&w.to_le_bytes()[..width]);
                        inputs.push((format!("{width} bytes at {at} = {w:#x}"), d));
                    }
                }
            }
        }
        let (ok, err) = assert_no_panics(name, inputs, read);
        eprintln!("{name}: {ok} overwrites read, {err} refused");
        assert!(
            largest_allocation() <= ALLOC_LIMIT,
            "{name}: an allocation of {} bytes",
            largest_allocation()
        );
    }
}

fn zip_entries(name: &str) -> Vec<(String, Vec<u8>)> {
    let data = fixture(name);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&data)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().unwrap().into_owned(), b)
        })
        .collect()
}

/// The archive `entries` with entry `which` replaced by `data` (stored, correct CRCs).
fn rezip(entries: &[(String, Vec<u8>)], which: usize, data: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (i, (n, b)) in entries.iter().enumerate() {
        w.start_file(n.as_str(), opts).unwrap();
        w.write_all(if i == which { data } else { b }).unwrap();
    }
    w.finish().unwrap();
    out.into_inner()
}

/// [`exhaustive_boundary_overwrites`] of a zip checkpoint's `data.pkl`, re-zipped with correct
/// CRCs so that the pickle and tensor checks are reached.
#[test]
fn exhaustive_boundary_overwrites_of_data_pkl() {
    const BYTES: [u8; 4] = [0x00, 0x7f, 0x80, 0xff];
    const WORDS: [u64; 4] = [1 << 31, 1 << 40, 1 << 62, u64::MAX];
    for name in ["tensors_zip.pth", "compiled_zip.pth"] {
        let entries = zip_entries(name);
        let pkl = entries.iter().position(|(n, _)| n.ends_with("/data.pkl")).unwrap();
        let data = &entries[pkl].1;
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        for at in 0..data.len() {
            for b in BYTES {
                let mut d = data.clone();
                d[at] = b;
                inputs.push((format!("byte {at} = {b:#x}"), rezip(&entries, pkl, &d)));
            }
            for w in WORDS {
                if at + 8 <= data.len() {
                    let mut d = data.clone();
                    d[at..at + 8].copy_from_slice(&w.to_le_bytes());
                    inputs.push((format!("8 bytes at {at} = {w:#x}"), rezip(&entries, pkl, &d)));
                }
            }
        }
        let (ok, err) = assert_no_panics(name, inputs, read);
        eprintln!("{name} data.pkl: {ok} overwrites read, {err} refused");
        assert!(
            largest_allocation() <= ALLOC_LIMIT,
            "{name}: an allocation of {} bytes",
            largest_allocation()
        );
    }
}
