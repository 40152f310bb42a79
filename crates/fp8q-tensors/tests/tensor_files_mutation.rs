//! The tensor-file readers (`.npy`, `.safetensors`) on valid, hand-written and mutated
//! files: exact values where valid, `Ok` or `Err` (never a panic, never an allocation beyond
//! [`ALLOC_LIMIT`]) on many mutated copies.

use fp8q_tensors::tensor_files;

#[path = "common/mutate.rs"]
mod mutate;

use std::path::Path;

use mutate::{assert_no_panics, largest_allocation, mutants, truncations};

#[global_allocator]
static ALLOC: mutate::Tracking = mutate::Tracking;

const ALLOC_LIMIT: usize = 16 << 20;

/// A `.npy` file written by hand: version 1.0, the given header dict text and payload.
fn npy(dict: &str, payload: &[u8]) -> Vec<u8> {
    let v2 = dict.len() > 60000;
    let pre = if v2 { 12 } else { 10 };
    let mut header = dict.to_string();
    while !(pre + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut b = if v2 {
        let mut b = b"\x93NUMPY\x02\x00".to_vec();
        b.extend((header.len() as u32).to_le_bytes());
        b
    } else {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b
    };
    b.extend(header.as_bytes());
    b.extend(payload);
    b
}

fn read_npy_bytes(bytes: &[u8]) -> fp8q_tensors::Result<tensor_files::TensorFile> {
    let dir = std::env::temp_dir().join(format!(
        "fp8q-npy-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("t.npy");
    std::fs::write(&p, bytes).unwrap();
    tensor_files::read(&p)
}

fn read_st_bytes(bytes: &[u8]) -> fp8q_tensors::Result<tensor_files::TensorFile> {
    let dir = std::env::temp_dir().join(format!(
        "fp8q-st-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("t.safetensors");
    std::fs::write(&p, bytes).unwrap();
    tensor_files::read(&p)
}

fn f32_payload(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn npy_values_are_exact() {
    let v = [1.5f32, -2.0, 3.25, 0.0, f32::MIN_POSITIVE, 7.0];
    let t = read_npy_bytes(&npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        &f32_payload(&v),
    ))
    .unwrap();
    assert_eq!(t.tensors[0].shape, vec![2, 3]);
    assert_eq!(t.tensors[0].data, v);
    assert_eq!(t.tensors[0].stored_dtype, "f32");
    // f64, big-endian f8, f2, a Python 2 long in the shape, a scalar, double quotes
    let d: Vec<u8> = [0.5f64, -1e300].iter().flat_map(|x| x.to_le_bytes()).collect();
    let t = read_npy_bytes(&npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }", &d)).unwrap();
    assert_eq!(t.tensors[0].data, vec![0.5, f32::NEG_INFINITY]);
    let d: Vec<u8> = [0.5f64, 3.0].iter().flat_map(|x| x.to_be_bytes()).collect();
    let t = read_npy_bytes(&npy("{'descr': '>f8', 'fortran_order': False, 'shape': (2,)}", &d)).unwrap();
    assert_eq!(t.tensors[0].data, vec![0.5, 3.0]);
    let t = read_npy_bytes(&npy(
        "{\"descr\": \"<f2\", \"fortran_order\": True, \"shape\": (3,)}",
        &[0, 0x3c, 0, 0xc0, 1, 0],
    ))
    .unwrap();
    assert_eq!(t.tensors[0].data, vec![1.0, -2.0, 2f32.powi(-24)]);
    assert_eq!(t.tensors[0].stored_dtype, "f16");
    let t = read_npy_bytes(&npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': ()}",
        &f32_payload(&[4.0]),
    ))
    .unwrap();
    assert!(t.tensors[0].shape.is_empty());
    assert_eq!(t.tensors[0].data, vec![4.0]);
}

#[test]
fn npy_bad_headers_are_errors() {
    for (dict, payload, needle) in [
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
            vec![0u8; 8],
            "needs",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
            vec![],
            "too many",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            vec![0u8; 11],
            "holds 11 bytes",
        ),
        (
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
            vec![0u8; 8],
            "unsupported dtype",
        ),
        (
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            vec![0u8; 4],
            "structured",
        ),
        (
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            vec![0u8; 16],
            "Fortran",
        ),
        ("{'descr': '<f4', 'shape': (1,), }", vec![0u8; 4], "fortran_order"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': ((((1,),),),), }",
            vec![0u8; 4],
            "bad shape",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
            vec![],
            "too large",
        ),
        ("{'descr': '<f4", vec![], "unterminated"),
    ] {
        let err = format!("{:#}", read_npy_bytes(&npy(dict, &payload)).unwrap_err());
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // a header length past the end of the file
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend(u32::MAX.to_le_bytes());
    b.extend(b"{}");
    let err = format!("{:#}", read_npy_bytes(&b).unwrap_err());
    assert!(err.contains("runs past the end"), "{err}");
    // deep nesting in the header is a plain error
    let deep = format!("{{'descr': {}", "(".repeat(1_000_000));
    let err = format!("{:#}", read_npy_bytes(&npy(&deep, &[])).unwrap_err());
    assert!(err.contains("unexpected header entry"), "{err}");
}

fn valid_npys() -> Vec<Vec<u8>> {
    let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 3.0).collect();
    let d: Vec<u8> = v.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect();
    vec![
        npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }",
            &f32_payload(&v),
        ),
        npy("{'descr': '<f8', 'fortran_order': False, 'shape': (24,), }", &d),
        npy(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (4, 3), }",
            &[0x3cu8; 24],
        ),
    ]
}

#[test]
fn npy_mutants() {
    // in memory: the reader behind `read`, without a file per mutant
    for (i, data) in valid_npys().iter().enumerate() {
        assert!(read_npy_bytes(data).is_ok());
        let inputs = mutants(data, 100 + i as u64, 20000).chain(truncations(data, 1000));
        let (ok, err) = assert_no_panics("npy", inputs, tensor_files::npy_from_bytes);
        eprintln!("npy {i}: {ok} read, {err} refused");
        assert!(err > 0);
    }
    assert!(
        largest_allocation() <= ALLOC_LIMIT,
        "an allocation of {} bytes",
        largest_allocation()
    );
}

#[test]
fn safetensors_mutants() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoints/tensors.safetensors");
    let data = std::fs::read(p).unwrap();
    assert!(read_st_bytes(&data).is_ok());
    let inputs = mutants(&data, 200, 20000).chain(truncations(&data, 2000));
    let (ok, err) = assert_no_panics("safetensors", inputs, tensor_files::safetensors_from_bytes);
    eprintln!("safetensors: {ok} read, {err} refused");
    assert!(err > 0);
    assert!(
        largest_allocation() <= ALLOC_LIMIT,
        "an allocation of {} bytes",
        largest_allocation()
    );
}
