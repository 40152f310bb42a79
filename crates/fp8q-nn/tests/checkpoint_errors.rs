//! Bad checkpoints give clear errors naming the file, and reading a `.pth` executes nothing.

use std::io::Write;

use fp8q_nn::models::{Architecture, Model};
use fp8q_tensors::checkpoint::Checkpoint;

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fp8q_ckpt_{}_{name}", std::process::id()))
}

fn write_zip(path: &std::path::Path, pickle: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pickle).unwrap();
    z.finish().unwrap();
}

#[test]
fn missing_file_is_named() {
    let p = tmp("does_not_exist.pth");
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("cannot read") && err.contains("does_not_exist.pth"),
        "{err}"
    );
}

#[test]
fn garbage_is_rejected() {
    let p = tmp("garbage.pth");
    std::fs::write(&p, b"this is not a checkpoint at all").unwrap();
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("invalid checkpoint") && err.contains("garbage.pth"),
        "{err}"
    );
    let p2 = tmp("truncated.safetensors");
    std::fs::write(&p2, [8u8, 0, 0, 0, 0, 0, 0, 0, b'{']).unwrap();
    let err = Checkpoint::load(&p2).unwrap_err().to_string();
    assert!(
        err.contains("invalid checkpoint") && err.contains("truncated.safetensors"),
        "{err}"
    );
    std::fs::remove_file(p).unwrap();
    std::fs::remove_file(p2).unwrap();
}

/// A pickle that would call `os.system("touch <marker>")` under Python's unpickler is only
/// read as data: nothing runs, and the file is reported as holding no state dict.
#[test]
fn pickle_code_is_never_executed() {
    let marker = tmp("pwned_marker");
    let _ = std::fs::remove_file(&marker);
    let cmd = format!("touch {}", marker.display());
    let mut pk = b"\x80\x02cposix\nsystem\nX".to_vec();
    pk.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    pk.extend_from_slice(cmd.as_bytes());
    pk.extend_from_slice(b"\x85R.");
    let p = tmp("evil.pth");
    write_zip(&p, &pk);
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(err.contains("no state dict") && err.contains("evil.pth"), "{err}");
    assert!(!marker.exists(), "the pickle's payload ran");
    std::fs::remove_file(p).unwrap();
}

/// A truncated pickle is an error, not a panic.
#[test]
fn truncated_pickle_is_an_error() {
    let p = tmp("trunc_pickle.pth");
    write_zip(&p, b"\x80\x02}q\x00(X\x03\x00\x00\x00ab");
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("unreadable pickle") && err.contains("trunc_pickle.pth"),
        "{err}"
    );
    std::fs::remove_file(p).unwrap();
}

// ---- hostile and broken files -------------------------------------------------------------

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fp8q-tensors/tests/data/checkpoints")
        .join(name);
    std::fs::read(p).unwrap()
}

/// Load `bytes` from a file called `name`; the error message.
fn load_err(name: &str, bytes: &[u8]) -> String {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    std::fs::remove_file(&p).unwrap();
    assert!(err.contains(name), "the message names the file: {err}");
    err
}

/// A pickle nesting `n` lists: `[[[…]]]`.
fn nested_lists(n: usize) -> Vec<u8> {
    let mut pk = b"\x80\x02".to_vec();
    pk.extend(std::iter::repeat_n(b']', n));
    pk.extend(std::iter::repeat_n(b'a', n - 1));
    pk.push(b'.');
    pk
}

/// The three header pickles of a legacy stream: magic number, protocol version, sys_info.
fn legacy_header() -> Vec<u8> {
    let mut b = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.".to_vec();
    b.extend(b"\x80\x02M\xe9\x03.");
    b.extend(b"\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u.");
    b
}

/// A pickle integer (always LONG1 with 8 bytes).
fn int(v: u64) -> Vec<u8> {
    let mut b = vec![0x8a, 8];
    b.extend(v.to_le_bytes());
    b
}

fn unicode(s: &str) -> Vec<u8> {
    let mut b = vec![b'X'];
    b.extend((s.len() as u32).to_le_bytes());
    b.extend(s.as_bytes());
    b
}

fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![b'('];
    for i in items {
        b.extend(i);
    }
    b.push(b't');
    b
}

/// `{'w': _rebuild_tensor_v2(<storage '0', FloatStorage, numel>, offset, size, stride, False, {})}`.
fn state_dict_pickle(numel: u64, offset: u64, size: &[u64], stride: &[u64]) -> Vec<u8> {
    let mut b = b"\x80\x02}".to_vec();
    b.extend(unicode("w"));
    b.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
    let pid = tuple(&[
        unicode("storage"),
        b"ctorch\nFloatStorage\n".to_vec(),
        unicode("0"),
        unicode("cpu"),
        int(numel),
        b"N".to_vec(),
    ]);
    let mut storage = pid;
    storage.push(b'Q');
    let size: Vec<Vec<u8>> = size.iter().map(|&v| int(v)).collect();
    let stride: Vec<Vec<u8>> = stride.iter().map(|&v| int(v)).collect();
    b.extend(tuple(&[
        storage,
        int(offset),
        tuple(&size),
        tuple(&stride),
        b"\x89}".to_vec(),
    ]));
    b.extend(b"Rs.");
    b
}

/// A legacy stream with that state dict, key list ['0'], a declared count and `data_len` bytes.
fn legacy_file(obj: &[u8], count: u64, data_len: usize) -> Vec<u8> {
    let mut b = legacy_header();
    b.extend(obj);
    b.extend(b"\x80\x02]");
    b.extend(unicode("0"));
    b.extend(b"a.");
    b.extend(count.to_le_bytes());
    b.extend((0..data_len).map(|i| i as u8));
    b
}

#[test]
fn hand_built_legacy_file_reads() {
    // the builders above are right: a 2x2 transpose of storage [b0..b15] as floats
    let p = tmp("handmade.pth");
    std::fs::write(&p, legacy_file(&state_dict_pickle(4, 0, &[2, 2], &[1, 2]), 4, 16)).unwrap();
    let c = Checkpoint::load(&p).unwrap();
    let v = c.tensors["w"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let f = |i: u8| f32::from_le_bytes([4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]);
    assert_eq!(v, vec![f(0), f(2), f(1), f(3)]);
    std::fs::remove_file(p).unwrap();
}

/// A million nested lists: a clear error, not a stack overflow (zip data.pkl and legacy stream).
#[test]
fn million_nested_lists_are_an_error() {
    let pk = nested_lists(1_000_000);
    let p = tmp("nested.pth");
    write_zip(&p, &pk);
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(err.contains("no state dict") && err.contains("list"), "{err}");
    std::fs::remove_file(p).unwrap();

    let mut legacy = legacy_header();
    legacy.extend(&pk);
    legacy.extend(b"\x80\x02]."); // the (empty) storage key list
    let err = load_err("nested_legacy.pth", &legacy);
    assert!(
        err.contains("legacy torch.save stream") && err.contains("no state dict"),
        "{err}"
    );
    // nested a million deep inside the state dict, under a tensor key
    let mut deep = b"\x80\x02}".to_vec();
    deep.extend(unicode("w"));
    deep.extend(&pk[2..pk.len() - 1]);
    deep.extend(b"s.");
    let err = load_err(
        "nested_in_dict.pth",
        &[legacy_header(), deep, b"\x80\x02].".to_vec()].concat(),
    );
    assert!(err.contains("no state dict"), "{err}");
}

#[test]
fn random_bytes_name_the_formats_tried() {
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 & 0x7f // never 0x80 (pickle) nor 'P' at 0 by luck: checked below
        })
        .collect();
    assert!(bytes[0] != 0x80 && bytes[0] != b'P' && bytes[8] != b'{');
    let err = load_err("random.bin", &bytes);
    assert!(
        err.contains("not a PyTorch zip checkpoint, a legacy torch.save stream or a safetensors file"),
        "{err}"
    );
    let err = load_err("empty.pth", b"");
    assert!(err.contains("empty file"), "{err}");
    // a tar archive (PyTorch < 0.1.10) and a gzip-compressed file: the one error, with a hint
    let mut tar = vec![0u8; 1024];
    tar[..7].copy_from_slice(b"pickle\0");
    tar[257..263].copy_from_slice(b"ustar\0");
    let err = load_err("old.pth.tar", &tar);
    assert!(
        err.contains("not a PyTorch zip checkpoint") && err.contains("tar archive"),
        "{err}"
    );
    let err = load_err("ckpt.pth.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    assert!(
        err.contains("not a PyTorch zip checkpoint") && err.contains("gzip"),
        "{err}"
    );
    // a zip that is not torch.save's (a NumPy .npz)
    let p = tmp("arrays.npz");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    z.start_file("a.npy", zip::write::SimpleFileOptions::default()).unwrap();
    z.write_all(b"\x93NUMPY").unwrap();
    z.finish().unwrap();
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    std::fs::remove_file(&p).unwrap();
    assert!(
        err.contains("arrays.npz")
            && err.contains("not a PyTorch zip checkpoint")
            && err.contains("without a <name>/data.pkl"),
        "{err}"
    );
}

#[test]
fn truncated_files_are_errors_naming_the_format() {
    for (name, format) in [
        ("tensors_zip.pth", "PyTorch zip checkpoint"),
        ("tensors_legacy.pth", "legacy torch.save stream"),
        ("tensors.safetensors", "safetensors file"),
    ] {
        let full = fixture(name);
        for cut in [full.len() - 1, full.len() / 2, full.len() / 3, 20, 10] {
            let err = load_err(&format!("cut_{cut}_{name}"), &full[..cut]);
            assert!(err.contains(format), "{err}");
        }
    }
}

#[test]
fn absurd_declared_lengths_are_refused_before_allocating() {
    // BINUNICODE of 4 GiB, BINUNICODE8 / BINBYTES8 of 2^60, LONG4 of 2^31-1
    for op in [
        &b"X\xff\xff\xff\xff"[..],
        b"\x8d\x00\x00\x00\x00\x00\x00\x00\x10",
        b"\x8e\x00\x00\x00\x00\x00\x00\x00\x10",
        b"\x8b\xff\xff\xff\x7f",
    ] {
        let mut b = legacy_header();
        b.extend(b"\x80\x02");
        b.extend(op);
        b.extend(b"abc.");
        let err = load_err("long_string.pth", &b);
        assert!(err.contains("needs") && err.contains("only"), "{err}");
    }
    // a storage that declares 2^60 elements, in the reference and in the stream
    let err = load_err(
        "huge_storage.pth",
        &legacy_file(&state_dict_pickle(1 << 60, 0, &[2], &[1]), 1 << 60, 8),
    );
    assert!(err.contains("truncated") || err.contains("overflow"), "{err}");
    // the stream's count disagrees with the reference
    let err = load_err(
        "count_mismatch.pth",
        &legacy_file(&state_dict_pickle(4, 0, &[4], &[1]), 1 << 60, 16),
    );
    assert!(err.contains("holds 1152921504606846976 elements"), "{err}");
}

#[test]
fn views_outside_their_storage_are_errors() {
    for (numel, offset, size, stride, needle) in [
        (4u64, 3u64, vec![2u64], vec![1u64], "reaches element 4"),
        (4, 0, vec![2, 2], vec![3, 1], "reaches element 4"),
        (4, u64::MAX, vec![1], vec![1], "non-negative"),
        (4, 0, vec![1 << 20, 1 << 20], vec![0, 0], "elements exceed"),
        (
            4,
            0,
            vec![1 << 32, 1 << 32, 1 << 32],
            vec![0, 0, 0],
            "too many elements",
        ),
        (4, 0, vec![3, 3], vec![1 << 62, 1 << 62], "overflows"),
        (4, 0, vec![2], vec![1, 1], "differ in rank"),
        // empty, but its contiguous strides would overflow (a panic in the tensor library)
        (4, 0, vec![0, 1 << 40, 1 << 40], vec![1, 1, 1], "too large"),
        (4, 0, vec![0, 1 << 62, 4], vec![1, 1, 1], "too large"),
    ] {
        let err = load_err(
            "bad_view.pth",
            &legacy_file(&state_dict_pickle(numel, offset, &size, &stride), numel, 16),
        );
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // a zip entry shorter than its storage claims
    let p = tmp("short_storage.pth");
    let f = std::fs::File::create(&p).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(&state_dict_pickle(1 << 40, 0, &[2], &[1])).unwrap();
    z.start_file("archive/data/0", opts).unwrap();
    z.write_all(&[0u8; 8]).unwrap();
    z.finish().unwrap();
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(err.contains("holds 8 bytes"), "{err}");
    std::fs::remove_file(p).unwrap();
}

#[test]
fn legacy_structure_errors() {
    // a plain pickle is not a torch.save stream
    let err = load_err("plain.pkl", b"\x80\x02}.");
    assert!(
        err.contains("magic number")
            && err.contains("not a PyTorch zip checkpoint, a legacy torch.save stream or a safetensors file"),
        "{err}"
    );
    // a listed storage that nothing refers to
    let mut b = legacy_header();
    b.extend(state_dict_pickle(4, 0, &[4], &[1]));
    b.extend(b"\x80\x02]");
    b.extend(unicode("7"));
    b.extend(b"a.");
    let err = load_err("unlisted.pth", &b);
    assert!(err.contains("storage 7 is listed but never referred to"), "{err}");
    // the tensor's storage is not in the list
    let mut b = legacy_header();
    b.extend(state_dict_pickle(4, 0, &[4], &[1]));
    b.extend(b"\x80\x02].");
    let err = load_err("missing_storage.pth", &b);
    assert!(err.contains("storage 0 is missing"), "{err}");
    // big-endian files are refused
    let mut b = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.".to_vec();
    b.extend(b"\x80\x02}(X\x0d\x00\x00\x00little_endian\x89u.");
    let err = load_err("big_endian.pth", &b);
    assert!(err.contains("big-endian"), "{err}");
}

/// A dict with a known wrapper key whose value is not a state dict, and no tensors: the error
/// lists the keys looked for and the keys found.
#[test]
fn wrapper_without_state_dict_lists_keys() {
    let mut b = legacy_header();
    b.extend(b"\x80\x02}");
    b.extend(unicode("epoch"));
    b.extend(b"K\x03s");
    b.extend(unicode("state_dict"));
    b.extend(b"]s.");
    b.extend(b"\x80\x02].");
    let err = load_err("wrapper.pth", &b);
    assert!(
        err.contains("'epoch', 'state_dict'") && err.contains("model_state_dict"),
        "{err}"
    );
}

/// A whole pickled module (`torch.save(model)`), alone or inside a training checkpoint, and a
/// TorchScript archive: the error names the class and says to save `model.state_dict()`.
#[test]
fn whole_models_are_refused_with_a_hint() {
    for (name, needles) in [
        (
            "whole_module_legacy.pth",
            &[
                "legacy torch.save stream",
                "pickled torch.nn.modules.linear.Linear object",
                "model.state_dict()",
            ][..],
        ),
        (
            "whole_module_wrapped_zip.pth",
            &[
                "'model' is a pickled torch.nn.modules.linear.Linear object",
                "model.state_dict()",
            ],
        ),
        (
            "torchscript.pt",
            &["TorchScript module", "torch.jit.save", "model.state_dict()"],
        ),
    ] {
        let err = load_err(name, &fixture(name));
        for n in needles {
            assert!(err.contains(n), "{name}: {n}: {err}");
        }
    }
}

/// Tensors of other kinds (here a quantized one) in the state dict are named, not skipped.
#[test]
fn quantized_tensors_are_named() {
    let err = load_err("quantized_zip.pth", &fixture("quantized_zip.pth"));
    assert!(err.contains("tensor q: a quantized tensor"), "{err}");
}

// ---- checkpoints that do not fit the network ------------------------------------------------

fn ptq_small(name: &str) -> Checkpoint {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fp8q-ptq/tests/data/ptq_small")
        .join(name);
    Checkpoint::load(p).unwrap()
}

fn renamed(c: &Checkpoint, f: impl Fn(&str) -> String) -> Checkpoint {
    Checkpoint {
        path: c.path.clone(),
        tensors: c.tensors.iter().map(|(k, v)| (f(k), v.clone())).collect(),
    }
}

fn mismatch_message(arch: Architecture, c: Checkpoint) -> String {
    match Model::from_checkpoint(arch, c) {
        Ok(_) => panic!("the checkpoint fits"),
        Err(e) => e.to_string(),
    }
}

/// A PyTorch Lightning checkpoint's state dict holds the module's attributes: `model.conv1.weight`.
/// The shared first component is dropped for the network; a real mismatch under it is reported
/// as itself, not as every key missing.
#[test]
fn lightning_prefix_is_dropped_for_the_network() {
    let c = ptq_small("resnet18_narrow.pth");
    let lightning = renamed(&c, |k| format!("model.{k}"));
    let m = Model::from_checkpoint(Architecture::Resnet18, lightning.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.num_classes(), c.tensors["fc.weight"].dims()[0]);
    let mut bad = lightning;
    let w = bad.tensors["model.layer1.0.conv1.weight"].narrow(3, 0, 1).unwrap();
    bad.tensors.insert("model.layer1.0.conv1.weight".into(), w);
    let err = mismatch_message(Architecture::Resnet18, bad);
    assert!(
        err.contains("'model.'") && err.contains("1 mis-shaped") && err.contains("layer1.0.conv1.weight: expected"),
        "{err}"
    );
    assert!(!err.contains("missing"), "{err}");
    // keys that share nothing useful still get the plain report
    let err = mismatch_message(Architecture::Resnet18, renamed(&c, |k| format!("x.y.z.{k}")));
    assert!(err.contains("missing") && err.contains("x.y.z.conv1.weight"), "{err}");
}

/// Errors about a torchvision-layout MobileNetV2 name the keys as the file has them.
#[test]
fn torchvision_mobilenet_errors_name_the_files_keys() {
    let c = ptq_small("mobilenet_v2_narrow.pth.tar");
    // the paper's layout → torchvision's (written here independently of the library)
    let expanded = |block: &str| {
        c.tensors
            .keys()
            .any(|k| k.starts_with(&format!("features.{block}.conv.7.")))
    };
    let tv = renamed(&c, |k| {
        let Some((block, rest)) = k.strip_prefix("features.").and_then(|r| r.split_once(".conv.")) else {
            return k.to_string();
        };
        let (idx, param) = rest.split_once('.').unwrap();
        let to = match (expanded(block), idx) {
            (_, "0") => "0.0",
            (_, "1") => "0.1",
            (true, "3") => "1.0",
            (true, "4") => "1.1",
            (true, "6") => "2",
            (true, "7") => "3",
            (false, "3") => "1",
            (false, "4") => "2",
            other => panic!("{other:?}"),
        };
        format!("features.{block}.conv.{to}.{param}")
    });
    assert!(tv.tensors.contains_key("features.5.conv.1.0.weight"));
    Model::from_checkpoint(Architecture::MobilenetV2, tv.clone()).unwrap_or_else(|e| panic!("{e}"));
    let mut bad = renamed(&tv, |k| {
        if k == "features.6.conv.2.weight" {
            format!("{k}_x")
        } else {
            k.to_string()
        }
    });
    let w = bad.tensors["features.5.conv.1.0.weight"].narrow(3, 0, 1).unwrap();
    bad.tensors.insert("features.5.conv.1.0.weight".into(), w);
    let err = mismatch_message(Architecture::MobilenetV2, bad);
    for needle in [
        "torchvision key layout",
        "missing tensor(s):\n    features.6.conv.2.weight\n",
        "features.6.conv.2.weight_x",
        "features.5.conv.1.0.weight: expected",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// A stride-0 `conv1.weight` / `features.0.0.weight` declaring 100 000 channels (a few bytes in
/// a file): the network's next layers ask for 10^5 × 10^5 × 3 × 3 weights, which are reported as
/// mis-shaped, not allocated (it used to abort on a 360 GB allocation).
#[test]
fn absurd_widths_are_reported_not_allocated() {
    for (arch, file, key) in [
        (Architecture::Resnet18, "resnet18_narrow.pth", "conv1.weight"),
        (
            Architecture::MobilenetV2,
            "mobilenet_v2_narrow.pth.tar",
            "features.0.0.weight",
        ),
    ] {
        let mut c = ptq_small(file);
        let dims = c.tensors[key].dims().to_vec();
        let wide = candle_core::Tensor::zeros((), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap()
            .broadcast_as((100_000, dims[1], dims[2], dims[3]))
            .unwrap();
        c.tensors.insert(key.to_string(), wide);
        let err = mismatch_message(arch, c);
        assert!(
            err.contains("does not fit") && err.contains("expected [100000"),
            "{err}"
        );
    }
}

/// An empty safetensors tensor whose other sizes are absurd: an error (torch too refuses it:
/// "Stride calculation overflowed"), not an overflow in the tensor library.
#[test]
fn empty_safetensors_tensor_of_absurd_shape_is_an_error() {
    let header = br#"{"e":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header);
    b.extend(1f32.to_le_bytes());
    let err = load_err("empty_huge.safetensors", &b);
    assert!(
        err.contains("tensor e: shape [0, 1099511627776, 1099511627776] is too large"),
        "{err}"
    );
}
