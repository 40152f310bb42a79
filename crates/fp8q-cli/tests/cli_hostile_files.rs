//! Hostile and broken input files through the built binary: exit code 2 and a message naming
//! the file and the problem, never a crash (a stack overflow would abort with 134).

mod common;
use common::{assert_user_error, fp8q, tmpdir};

/// A legacy `torch.save` stream whose object pickle nests a million lists.
fn nested_legacy_checkpoint() -> Vec<u8> {
    let mut b = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.".to_vec();
    b.extend(b"\x80\x02M\xe9\x03.");
    b.extend(b"\x80\x02}.");
    b.extend(b"\x80\x02");
    let n = 1_000_000;
    b.extend(std::iter::repeat_n(b']', n));
    b.extend(std::iter::repeat_n(b'a', n - 1));
    b.extend(b".\x80\x02].");
    b
}

#[test]
fn nested_pickle_checkpoint_exits_2() {
    let dir = tmpdir("hostile-ckpt");
    // an images folder that passes the cheap checks, so that the checkpoint is what fails
    for sub in ["train", "val"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let p = dir.join("mobilenet_v2.pth.tar");
    std::fs::write(&p, nested_legacy_checkpoint()).unwrap();
    let out = fp8q(&[
        "validate-quantized",
        "--architecture",
        "mobilenet_v2",
        "--model-dir",
        p.to_str().unwrap(),
        "--images-dir",
        dir.to_str().unwrap(),
    ]);
    assert_user_error(
        &out,
        &["mobilenet_v2.pth.tar", "legacy torch.save stream", "no state dict"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unrecognised_checkpoint_exits_2_naming_the_formats() {
    let dir = tmpdir("garbage-ckpt");
    // an images folder that passes the cheap checks, so that the checkpoint is what fails
    for sub in ["train", "val"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let p = dir.join("weights.pth");
    std::fs::write(&p, b"GIF89a not a checkpoint").unwrap();
    let out = fp8q(&[
        "validate-quantized",
        "--architecture",
        "resnet18",
        "--model-dir",
        p.to_str().unwrap(),
        "--images-dir",
        dir.to_str().unwrap(),
    ]);
    assert_user_error(
        &out,
        &[
            "weights.pth",
            "not a PyTorch zip checkpoint, a legacy torch.save stream or a safetensors file",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn hostile_tensor_files_exit_2() {
    let dir = tmpdir("hostile-tensors");
    // an .npy whose shape asks for 10^12 floats, with 8 bytes of data
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((header.len() as u16).to_le_bytes());
    npy.extend(header.as_bytes());
    npy.extend([0u8; 8]);
    let p = dir.join("huge.npy");
    std::fs::write(&p, &npy).unwrap();
    let out = fp8q(&["quantize", p.to_str().unwrap()]);
    assert_user_error(&out, &["huge.npy", "needs 1000000000000 elements"]);

    // a safetensors file whose header length is 2^60
    let mut st = (1u64 << 60).to_le_bytes().to_vec();
    st.extend(b"{}");
    let p = dir.join("huge.safetensors");
    std::fs::write(&p, &st).unwrap();
    let out = fp8q(&["quantize", p.to_str().unwrap()]);
    assert_user_error(&out, &["huge.safetensors", "not a readable .safetensors file"]);
    std::fs::remove_dir_all(dir).unwrap();
}
