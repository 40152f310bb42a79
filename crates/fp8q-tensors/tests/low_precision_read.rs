//! Low-precision checkpoints read back as f32 weights: the fixtures of `fp8q-export` hold
//! weights compressed by compressed-tensors 0.20.1 and what its own decompressor returns
//! (`deq.M.weight`); reading the compressed tensors through the checkpoint reader must give the
//! same values, bit for bit, for every layout fp8q reads.

use std::path::Path;

use fp8q_tensors::checkpoint::Checkpoint;
use fp8q_tensors::tensor_files;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fp8q-export/tests/data/compressed_tensors")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const MODULES: [&str; 3] = ["layers.0.proj", "layers.1.proj", "layers.2.proj"];

fn bits(t: &candle_core::Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn every_layout_reads_back_as_compressed_tensors_dequantizes_it() {
    for scheme in [
        "fp8_e4m3_tensor",
        "fp8_e4m3_channel",
        "mxfp8_e4m3",
        "mxfp4",
        "nvfp4",
        "int8_channel",
    ] {
        let bytes = fixture(&format!("{scheme}.safetensors"));
        let t = Checkpoint::from_bytes(&bytes).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        for m in MODULES {
            let got = t
                .get(&format!("{m}.weight"))
                .unwrap_or_else(|| panic!("{scheme}: no {m}.weight"));
            let want = &t[&format!("deq.{m}.weight")];
            assert_eq!(got.dims(), want.dims(), "{scheme} {m}");
            assert_eq!(bits(got), bits(want), "{scheme} {m}");
            for part in ["weight_scale", "weight_packed", "weight_global_scale", "weight_shape"] {
                assert!(
                    !t.contains_key(&format!("{m}.{part}")),
                    "{scheme}: {m}.{part} was not consumed"
                );
            }
        }
        // the tensor-file reader (fp8q quantize) reads the same
        let f = tensor_files::safetensors_from_bytes(&bytes).unwrap();
        let w = f.tensors.iter().find(|x| x.name == "layers.0.proj.weight").unwrap();
        let want = &t["deq.layers.0.proj.weight"];
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(
            w.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{scheme}"
        );
        assert_ne!(w.stored_dtype, "f32", "{scheme}: the layout is named");
    }
}

#[test]
fn a_layout_fp8q_does_not_read_is_a_clear_error() {
    // MXFP4-style names whose packed width fits no element size
    let (scale, packed) = (vec![127u8; 4 * 2], vec![0u8; 4 * 40]);
    let scale_v = safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![4, 2], &scale).unwrap();
    let packed_v = safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![4, 40], &packed).unwrap();
    let bytes = safetensors::serialize(vec![("m.weight_scale", scale_v), ("m.weight_packed", packed_v)], None).unwrap();
    let e = Checkpoint::from_bytes(&bytes).unwrap_err();
    assert!(e.contains("m:") && e.contains("not a layout fp8q reads back"), "{e}");
}

/// Every single-byte change of a low-precision checkpoint's header and data reads back or is
/// an error: never a panic (the layouts' shapes, groupings and packed sizes are all checked).
#[test]
fn mutated_low_precision_files_never_panic() {
    for scheme in ["fp8_e4m3_channel", "mxfp4", "nvfp4", "int8_channel"] {
        let bytes = fixture(&format!("{scheme}.safetensors"));
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        // the header's digits (shapes, offsets) and a sample of the data
        let positions: Vec<usize> = (8..8 + n)
            .filter(|&i| bytes[i].is_ascii_digit())
            .chain((8 + n..bytes.len()).step_by(97))
            .collect();
        for &i in &positions {
            for v in [b'0', b'1', b'9', 0x00, 0xff] {
                let mut m = bytes.clone();
                m[i] = v;
                let r = std::panic::catch_unwind(|| {
                    let _ = Checkpoint::from_bytes(&m);
                    let _ = tensor_files::safetensors_from_bytes(&m);
                });
                assert!(r.is_ok(), "{scheme}: byte {i} = {v} panicked");
            }
        }
    }
}
