//! `fp8q encode` / `fp8q decode` through the built binary: the codes and scales in the file are
//! the library's encoding (torchao's layout), decoding gives the quantized tensor, and bad input
//! is a user error.

use std::path::Path;

mod common;
use common::{assert_user_error, fp8q, tmpdir};

/// A little-endian `.npy` v1.0 file of f32 values, written by hand.
fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn encode_then_decode() {
    let dir = tmpdir("encode");
    let shape = [6usize, 40];
    let x: Vec<f32> = (0..240)
        .map(|i| ((i as f32 * 0.37).sin() * (1.0 + (i % 7) as f32)) * 0.3)
        .collect();
    let input = dir.join("w.npy");
    write_npy(&input, &shape, &x);
    for (format, axis, codes_dtype, scales_dtype, codes_shape) in [
        (
            "mxfp4",
            "-1",
            safetensors::Dtype::U8,
            safetensors::Dtype::F8_E8M0,
            vec![6, 20],
        ),
        (
            "nvfp4",
            "0",
            safetensors::Dtype::U8,
            safetensors::Dtype::F8_E4M3,
            vec![6, 20],
        ),
        (
            "mxfp8_e4m3",
            "-1",
            safetensors::Dtype::F8_E4M3,
            safetensors::Dtype::F8_E8M0,
            vec![6, 40],
        ),
        (
            "mxint8",
            "1",
            safetensors::Dtype::I8,
            safetensors::Dtype::F8_E8M0,
            vec![6, 40],
        ),
        (
            "int4@16/f32",
            "-1",
            safetensors::Dtype::U8,
            safetensors::Dtype::F32,
            vec![6, 20],
        ),
    ] {
        let enc = dir.join("w.safetensors");
        let out = fp8q(&[
            "encode",
            input.to_str().unwrap(),
            "--format",
            format,
            "--block-axis",
            axis,
            "-o",
            enc.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f: fp8q_core::format::Format = format.parse().unwrap();
        let b = f.as_block().unwrap();
        let axis_n: isize = axis.parse().unwrap();
        let want = fp8q_core::quantizer::block_codes::encode_blocks(b, &x, &shape, axis_n).unwrap();
        let bytes = std::fs::read(&enc).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let codes = st.tensor("w.codes").unwrap();
        assert_eq!(
            (codes.dtype(), codes.shape().to_vec()),
            (codes_dtype, codes_shape.clone()),
            "{format}"
        );
        assert_eq!(codes.data(), &want.codes[..], "{format}");
        let scales = st.tensor("w.scales").unwrap();
        assert_eq!(scales.dtype(), scales_dtype, "{format}");
        assert_eq!(scales.shape(), &want.scale_shape[..], "{format}");
        assert_eq!(st.names().contains(&"w.tensor_scale"), want.tensor_scale.is_some());

        let dec = dir.join("q.npy");
        let out = fp8q(&["decode", enc.to_str().unwrap(), "-o", dec.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut q = vec![0f32; x.len()];
        fp8q_core::quantizer::block_quantizer::quantize_blocks(b, &x, &shape, axis_n, &mut q).unwrap();
        assert_eq!(read_npy(&dec), q, "{format}");
    }
    let enc = dir.join("bad.safetensors");
    assert_user_error(
        &fp8q(&[
            "encode",
            input.to_str().unwrap(),
            "--format",
            "e4m3",
            "-o",
            enc.to_str().unwrap(),
        ]),
        &["block-scaled"],
    );
    assert_user_error(
        &fp8q(&[
            "encode",
            input.to_str().unwrap(),
            "--format",
            "int16@32",
            "-o",
            enc.to_str().unwrap(),
        ]),
        &["8 bits"],
    );
    // a safetensors file that fp8q encode did not write
    let plain = dir.join("plain.safetensors");
    std::fs::write(
        &plain,
        safetensors::serialize(Vec::<(String, safetensors::tensor::TensorView)>::new(), None).unwrap(),
    )
    .unwrap();
    assert_user_error(
        &fp8q(&[
            "decode",
            plain.to_str().unwrap(),
            "-o",
            dir.join("x.npy").to_str().unwrap(),
        ]),
        &["fp8q.format"],
    );
    std::fs::remove_dir_all(&dir).ok();
}
