//! The encodings against compressed-tensors' own: `tests/data/compressed_tensors/` holds weights
//! compressed by compressed-tensors 0.20.1's compressors and scale observers and what its
//! decompressor gives back (`tools/make_export_fixtures.py`). Where fp8q's rules are the same as
//! compressed-tensors' (FP8 per tensor and per channel, MXFP8 with RCEIL-like scales, MXFP4 with
//! EVEN scales, NVFP4, all on f32 weights), every stored byte and every dequantized value must be
//! identical.

use std::path::Path;

use fp8q_core::format::ScaleRule;
use fp8q_export::encode::encode;
use fp8q_export::{ExportFormat, Layout};
use safetensors::{Dtype, SafeTensors};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compressed_tensors")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn f32s(st: &SafeTensors<'_>, name: &str) -> (Vec<f32>, Vec<usize>, Dtype) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let v = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::BF16 => t
            .data()
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        d => panic!("{name}: {d:?}"),
    };
    (v, t.shape().to_vec(), t.dtype())
}

const MODULES: [&str; 3] = ["layers.0.proj", "layers.1.proj", "layers.2.proj"];

/// Encode every f32 module of a fixture and compare stored tensors and dequantized values.
fn check(fixture_name: &str, format: ExportFormat, with_bf16: bool) {
    let bytes = fixture(&format!("{fixture_name}.safetensors"));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = 0;
    for m in MODULES {
        let (x, shape, dtype) = f32s(&st, &format!("in.{m}.weight"));
        if dtype == Dtype::BF16 && !with_bf16 {
            continue;
        }
        let enc = encode(&format, Layout::CompressedTensors, &format!("{m}.weight"), &x, &shape).unwrap();
        for part in &enc.parts {
            let name = format!("{m}.{}", part.spec.suffix);
            let t = st
                .tensor(&name)
                .unwrap_or_else(|e| panic!("{fixture_name}: {name}: {e}"));
            assert_eq!(
                (part.spec.dtype, &part.spec.shape[..]),
                (t.dtype(), t.shape()),
                "{fixture_name}: {name}"
            );
            let diff = part.data.iter().zip(t.data()).filter(|(a, b)| a != b).count();
            assert_eq!(
                diff,
                0,
                "{fixture_name}: {name}: {diff} of {} bytes differ",
                part.data.len()
            );
        }
        let (deq, _, _) = f32s(&st, &format!("deq.{m}.weight"));
        let diff: Vec<usize> = (0..deq.len())
            .filter(|&i| enc.values[i].to_bits() != deq[i].to_bits())
            .collect();
        assert!(
            diff.is_empty(),
            "{fixture_name}: {m}: {} values differ, first at {}: {} vs {}",
            diff.len(),
            diff[0],
            enc.values[diff[0]],
            deq[diff[0]]
        );
        checked += 1;
    }
    assert!(checked >= 2, "{fixture_name}: {checked} modules checked");
}

#[test]
fn fp8_per_tensor_and_per_channel() {
    let e4m3 = ExportFormat::parse("float8_e4m3fn", false, None).unwrap();
    check("fp8_e4m3_tensor", e4m3, false);
    let e4m3 = ExportFormat::parse("float8_e4m3fn", true, None).unwrap();
    check("fp8_e4m3_channel", e4m3, false);
}

#[test]
fn mxfp8_with_rceil_scales() {
    check(
        "mxfp8_e4m3",
        ExportFormat::parse("mxfp8_e4m3", false, Some(ScaleRule::Rceil)).unwrap(),
        true,
    );
}

#[test]
fn mxfp4_with_even_scales() {
    check(
        "mxfp4",
        ExportFormat::parse("mxfp4", false, Some(ScaleRule::Even)).unwrap(),
        true,
    );
}

#[test]
fn mxfp6_e2m3_with_even_scales() {
    check(
        "mxfp6_e2m3",
        ExportFormat::parse("mxfp6_e2m3", false, Some(ScaleRule::Even)).unwrap(),
        true,
    );
}

#[test]
fn nvfp4() {
    check("nvfp4", ExportFormat::parse("nvfp4", false, None).unwrap(), false);
}

/// compressed-tensors' INT8 scale is amax/127.5, fp8q's amax/127, so the codes differ; the
/// layout is checked instead: unpacking compressed-tensors' `weight_packed` as fp8q packs it
/// (offset binary, four to an int32, low byte first) and multiplying by its scales gives its
/// dequantized values, and fp8q's packing of those codes gives its bytes back.
#[test]
fn int8_packing_is_compressed_tensors_layout() {
    let bytes = fixture("int8_channel.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for m in &MODULES[..2] {
        let packed = st.tensor(&format!("{m}.weight_packed")).unwrap();
        let (scale, _, _) = f32s(&st, &format!("{m}.weight_scale"));
        let (deq, shape, _) = f32s(&st, &format!("deq.{m}.weight"));
        let shape_t = st.tensor(&format!("{m}.weight_shape")).unwrap();
        let dims: Vec<i64> = shape_t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(dims, shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
        let (out, cols) = (shape[0], shape[1]);
        let words: Vec<u32> = packed
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(packed.shape(), &[out, cols.div_ceil(4)]);
        for r in 0..out {
            for c in 0..cols {
                let w = words[r * cols.div_ceil(4) + c / 4];
                let q = ((w >> (8 * (c % 4))) & 0xff) as i32 - 128;
                assert_eq!(
                    (q as f32 * scale[r]).to_bits(),
                    deq[r * cols + c].to_bits(),
                    "{m} [{r}, {c}]"
                );
            }
        }
        // fp8q's encoder, given compressed-tensors' dequantized values, packs the same bytes
        // when its scale is the same: the values are exact multiples of the scale
        let x: Vec<f32> = deq.clone();
        let enc = encode(
            &ExportFormat::Int8,
            Layout::CompressedTensors,
            &format!("{m}.weight"),
            &x,
            &shape,
        )
        .unwrap();
        assert_eq!(enc.parts[0].spec.shape, packed.shape());
        assert_eq!(enc.parts[2].data, shape_t.data());
    }
}
