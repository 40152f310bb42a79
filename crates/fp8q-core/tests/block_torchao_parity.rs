//! fp8q's block-scaled formats against torchao's CPU reference, bit for bit.
//!
//! The fixtures in `tests/data/block_torchao/` are made by `tools/make_block_fixtures.py` with
//! torch and torchao (versions in the manifest; 0.18.0 when written): `to_mx` + `to_dtype` for
//! the MX formats under the FLOOR, CEIL, EVEN and RCEIL scale rules, `NVFP4Tensor.to_nvfp4`
//! with `per_tensor_amax_to_scale(amax)` + `dequantize` for NVFP4. torchao has no MXINT8: its
//! cases (FLOOR only, the OCP v1.0 rule) come from an independent numpy implementation in the
//! same script, written from the OCP MX v1.0 spec (no PyPI package of microsoft/microxcaling
//! was available to cross-check against).
//!
//! Every element of fp8q's `quantize_blocks` must equal the reference's dequantized value
//! (`to_bits`, any NaN equal to any NaN), except these differences of torchao 0.18.0, each
//! checked to be exactly the documented artifact and nothing else:
//!
//! 1. FLOOR/CEIL/EVEN blocks whose E8M0 scale is byte 0 (`2^-127`): torchao clamps its f32
//!    scale to `2^-126`, divides by it and multiplies back by `2^-127`. fp8q follows the spec
//!    (`q(x·2^127)·2^-127`); torchao must equal `q(x·2^126)·2^-127`.
//! 2. RCEIL: torchao 0.18's CPU path takes `ceil(log2(descale))` in f32, so a descale just
//!    above a power of two `2^e` gets `2^e` instead of `2^(e+1)` (the block maximum then
//!    saturates). fp8q uses the exact rule (smallest power of two `>= fl32(amax / elem_max)`).
//!    Such blocks are identified by the torchao byte being one below the exact byte with the
//!    descale within `2^-20` relatively above `2^e`; torchao must equal the quantization under
//!    its byte, fp8q under the exact byte.
//! 3. RCEIL blocks whose byte is 0 (descale `<= 2^-127`, zero blocks included): torchao scales
//!    the elements by a reciprocal of 1.0 instead of `2^127` (so they flush to zero) and
//!    multiplies back by `2^-127`; torchao must equal `q(x)·2^-127`, fp8q `q(x·2^127)·2^-127`.
//! 4. Blocks holding ±Inf (no NaN): fp8q makes the block NaN (its documented choice, OCP's NaN
//!    scale); torchao 0.18 gives a finite scale (FLOOR/CEIL/EVEN: the exponent field of Inf;
//!    RCEIL: byte 254) and keeps the infinity while the rest of the block flushes to zero.
//!    Checked: fp8q's block all NaN, torchao's not.
//!
//! 5. NVFP4 on a tensor so small that its tensor scale `amax / 2688` underflows to 0: every
//!    code decodes to a signed zero; fp8q stores the codes ±0, torchao ±6 (`x · (1 / 0)`
//!    clamped). The values agree (signed zeros); the codes are checked to be exactly these.
//!
//! The codes and scale bytes of `encode_blocks` are compared with torchao's `qdata` and scale
//! bytes (MXINT8: the numpy reference's two's-complement bytes) in every block whose values
//! are identical; a block whose scale is NaN (E8M0 255, E4M3 0x7f/0xff: torchao's NaN may carry
//! a sign) needs a NaN scale in fp8q and its codes are don't-cares (fp8q stores 0). In the
//! blocks of differences 1–4 fp8q's scale byte must be the spec's (or the exact RCEIL) byte.
//! `decode_blocks(encode_blocks(x)) == quantize_blocks(x)` in every case.
//!
//! torchao's main branch (read at commit 050515e) has none of differences 1–4: it multiplies
//! by the exact E8M0 reciprocal (byte 0 → `2^127`), computes RCEIL from the f32 bits, and
//! gives Inf blocks a NaN scale. (Its RCEIL descale is `amax · (1 / elem_max)` rather than
//! `amax / elem_max`; for the five elements here both give the same byte for every f32 amax up
//! to `2^-88` and every mantissa of the binade holding `elem_max`, checked once with torch when
//! the fixtures were made, outside the script.)
//!
//! NVFP4 on an all-zero tensor (torchao divides 0 by 0) is left out of the fixtures; fp8q's
//! zeros are checked separately.

use fp8q_core::format::{BlockElement, BlockFormat, ScaleFormat, ScaleRule};
use fp8q_core::quantizer::block_codes::{decode_blocks, encode_blocks, BlockEncoding, BlockScales};
use fp8q_core::quantizer::block_quantizer::{element_quantizer, quantize_blocks, BlockQuantizer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/block_torchao")
}

struct Fixtures {
    manifest: Value,
    input: Vec<f32>,
    dequant: Vec<f32>,
    codes: Vec<u8>,
    scales: Vec<u8>,
}

fn read_f32(name: &str) -> Vec<f32> {
    let b = std::fs::read(data_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(b.len() % 4, 0, "{name}");
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn load() -> Fixtures {
    let text = std::fs::read_to_string(data_dir().join("manifest.json")).expect("manifest.json");
    Fixtures {
        manifest: serde_json::from_str(&text).expect("manifest parses"),
        input: read_f32("input.f32"),
        dequant: read_f32("dequant.f32"),
        codes: std::fs::read(data_dir().join("codes.u8")).expect("codes.u8"),
        scales: std::fs::read(data_dir().join("scales.u8")).expect("scales.u8"),
    }
}

/// One fixture case, its slices cut out of the blobs.
struct Case<'a> {
    name: String,
    format: BlockFormat,
    family: String,
    shape: Vec<usize>,
    axis: isize,
    ref_transposed: bool,
    ref_shape: Vec<usize>,
    tensor_scale_bits: Option<u32>,
    input: &'a [f32],
    dequant: &'a [f32],
    codes: &'a [u8],
    scales: &'a [u8],
}

fn slice<'a, T>(blob: &'a [T], c: &Value, key: &str) -> &'a [T] {
    let r = c[key].as_array().unwrap_or_else(|| panic!("{key}"));
    let (off, len) = (r[0].as_u64().unwrap() as usize, r[1].as_u64().unwrap() as usize);
    &blob[off..off + len]
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn cases(f: &Fixtures) -> Vec<Case<'_>> {
    f.manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            format: c["format"].as_str().unwrap().parse().expect("format parses"),
            family: c["family"].as_str().unwrap().to_string(),
            shape: usizes(&c["shape"]),
            axis: c["axis"].as_i64().unwrap() as isize,
            ref_transposed: c["ref_transposed"].as_bool().unwrap(),
            ref_shape: usizes(&c["ref_shape"]),
            tensor_scale_bits: c.get("tensor_scale_bits").and_then(Value::as_u64).map(|b| b as u32),
            input: slice(&f.input, c, "input"),
            dequant: slice(&f.dequant, c, "dequant"),
            codes: slice(&f.codes, c, "codes"),
            scales: slice(&f.scales, c, "scales"),
        })
        .collect()
}

/// One byte per element: 4-bit codes unpacked (low nibble first).
fn unpack(codes: &[u8], nibbles: bool, n: usize) -> Vec<u8> {
    if nibbles {
        codes.iter().flat_map(|b| [b & 0xf, b >> 4]).take(n).collect()
    } else {
        codes.to_vec()
    }
}

/// fp8q's encoding of a case, laid out for the comparison: a code per element and the
/// scale byte of each element's block.
struct Fp8qCodes {
    codes: Vec<u8>,
    scale_bytes: Vec<u8>,
    tensor_scale: Option<f32>,
}

fn fp8q_codes(case: &Case, enc: &BlockEncoding) -> Fp8qCodes {
    let n = case.input.len();
    let nibbles = case.format.element().n_bits() == 4;
    let bytes = match &enc.scales {
        BlockScales::E8m0(v) | BlockScales::E4m3(v) => v.clone(),
        BlockScales::F32(_) => panic!("{}: no F32 scales in these fixtures", case.name),
    };
    let k = case.format.block_size();
    let (n0, n1) = (case.shape[0], case.shape[1]);
    let scale_bytes = (0..n)
        .map(|i| {
            let (r, c) = (i / n1, i % n1);
            // scale_shape is the shape with the block axis ceil(len / k) long
            let si = if case.axis == 0 {
                assert_eq!(enc.scale_shape, [n0.div_ceil(k), n1], "{}", case.name);
                (r / k) * n1 + c
            } else {
                assert_eq!(enc.scale_shape, [n0, n1.div_ceil(k)], "{}", case.name);
                r * n1.div_ceil(k) + c / k
            };
            bytes[si]
        })
        .collect();
    Fp8qCodes {
        codes: unpack(&enc.codes, nibbles, n),
        scale_bytes,
        tensor_scale: enc.tensor_scale,
    }
}

impl Case<'_> {
    /// Index in the reference's (padded, possibly transposed) tensor of fp8q's element `i`.
    fn ref_index(&self, i: usize) -> usize {
        assert_eq!(self.shape.len(), 2, "{}", self.name);
        let (r, c) = (i / self.shape[1], i % self.shape[1]);
        let (r, c) = if self.ref_transposed { (c, r) } else { (r, c) };
        r * self.ref_shape[1] + c
    }
}

fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn pow2(e: i32) -> f32 {
    (e as f64).exp2() as f32
}

/// The exact RCEIL byte, written here from its definition: the smallest `2^k >= fl32(amax /
/// elem_max)`, `k` in `-127..=127`, as `k + 127`.
fn exact_rceil(amax: f32, elem_max: f32) -> u8 {
    let d = (amax / elem_max) as f64;
    (-127..=127)
        .find(|&k| (k as f64).exp2() >= d)
        .map_or(254, |k| (k + 127) as u8)
}

/// What an E8M0 block gives when its elements are `x · into` (saturated, rounded) and scaled
/// back by `back`.
fn e8m0_values(element: BlockElement, x: &[f32], into: f32, back: f32) -> Vec<f32> {
    let q = element_quantizer(element);
    let m = element.max_value() as f32;
    let scaled: Vec<f32> = x.iter().map(|v| (v * into).clamp(-m, m)).collect();
    let mut out = vec![0f32; x.len()];
    q.quantize(&scaled, &mut out);
    out.iter().map(|v| v * back).collect()
}

/// How a block was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Identical,
    /// Difference 1: byte-0 scale under FLOOR/CEIL/EVEN.
    Byte0Clamp,
    /// Difference 2: RCEIL's f32 log2 one binade low.
    RceilLog2,
    /// Difference 3: RCEIL byte 0, reciprocal 1.0.
    RceilByte0,
    /// Difference 4: a block with ±Inf.
    InfBlock,
    /// Difference 5: NVFP4 codes under a tensor scale that underflowed to 0.
    ZeroTensorScale,
}

#[derive(Default)]
struct Report {
    mismatches: Vec<String>,
    /// blocks per kind, and how many of them really differed from torchao
    kinds: BTreeMap<Kind, (usize, usize)>,
}

/// Check fp8q's quantize-dequantize of one case against the reference, `format` standing in for
/// the case's own (a deliberately wrong one must fail).
fn check_case(case: &Case, format: BlockFormat, report: &mut Report) {
    let n = case.input.len();
    let mut got = vec![0f32; n];
    quantize_blocks(format, case.input, &case.shape, case.axis, &mut got).expect("quantize_blocks");
    let k = case.format.block_size();
    let element = case.format.element();
    let elem_max = element.max_value() as f32;

    // fp8q's encoding (under the case's own format only) and decode(encode(x)) == quantize(x)
    let nibbles = element.n_bits() == 4;
    let ref_codes = unpack(case.codes, nibbles, case.dequant.len());
    let enc = (format == case.format).then(|| {
        let enc = encode_blocks(format, case.input, &case.shape, case.axis).expect("encode_blocks");
        let dec = decode_blocks(format, &enc, &case.shape, case.axis).expect("decode_blocks");
        for (i, (d, g)) in dec.iter().zip(&got).enumerate() {
            if !same(*d, *g) {
                report.mismatches.push(format!(
                    "{} block -: decode(encode) element {i} is {d:e}, quantize {g:e}",
                    case.name
                ));
            }
        }
        fp8q_codes(case, &enc)
    });

    // fp8q's elements of each reference block (the pad, if any, is left out)
    let mut blocks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        blocks.entry(case.ref_index(i) / k).or_default().push(i);
    }
    for (b, idx) in blocks {
        let x: Vec<f32> = idx.iter().map(|&i| case.input[i]).collect();
        let want: Vec<f32> = idx.iter().map(|&i| case.dequant[case.ref_index(i)]).collect();
        let fp8q: Vec<f32> = idx.iter().map(|&i| got[i]).collect();
        let amax = x.iter().fold(0f32, |m, v| {
            if v.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(v.abs())
            }
        });
        let byte = case.scales[b];
        let e8m0 = case.format.scale() == ScaleFormat::E8m0 && case.family != "mxint8";
        let rule = case.format.rule();
        let mut kind = Kind::Identical;
        let mut fail = |what: String| report.mismatches.push(format!("{} block {b}: {what}", case.name));
        let mut expect_fp8q = want.clone();
        if e8m0 && amax.is_infinite() {
            kind = Kind::InfBlock;
            if !fp8q.iter().all(|v| v.is_nan()) {
                fail(format!("a block with Inf is not all NaN in fp8q: {fp8q:?}"));
            }
            if want.iter().all(|v| v.is_nan()) {
                fail("torchao made an Inf block NaN: difference 4 is gone".into());
            }
            expect_fp8q = fp8q.clone();
        } else if e8m0 && byte == 0 && rule != ScaleRule::Rceil {
            kind = Kind::Byte0Clamp;
            let artifact = e8m0_values(element, &x, pow2(126), pow2(-127));
            if !artifact.iter().zip(&want).all(|(a, b)| same(*a, *b)) {
                fail(format!(
                    "torchao's byte-0 block is not q(x·2^126)·2^-127: {want:?} vs {artifact:?}"
                ));
            }
            expect_fp8q = e8m0_values(element, &x, pow2(127), pow2(-127));
        } else if e8m0 && rule == ScaleRule::Rceil && !amax.is_nan() {
            let exact = exact_rceil(amax, elem_max);
            let d = (amax / elem_max) as f64;
            // difference 2: a descale just above 2^(byte - 127) gets byte instead of byte + 1
            let log2_low = |byte: u8| {
                let low = (byte as f64 - 127.0).exp2();
                exact == byte + 1 && d > low && d <= low * (1.0 + 2f64.powi(-20))
            };
            if byte == 0 {
                // difference 3 (and 2 as well where the exact byte is 1)
                kind = Kind::RceilByte0;
                let artifact = e8m0_values(element, &x, 1.0, pow2(-127));
                if !artifact.iter().zip(&want).all(|(a, b)| same(*a, *b)) {
                    fail(format!(
                        "torchao's RCEIL byte-0 block is not q(x)·2^-127: {want:?} vs {artifact:?}"
                    ));
                }
                if exact != 0 && !log2_low(0) {
                    fail(format!(
                        "torchao's RCEIL byte is 0 where the exact rule gives {exact} (descale {d:e})"
                    ));
                }
                let e = exact as i32 - 127;
                expect_fp8q = e8m0_values(element, &x, pow2(-e), pow2(e));
            } else if byte != exact {
                kind = Kind::RceilLog2;
                if !log2_low(byte) {
                    fail(format!(
                        "torchao's RCEIL byte {byte} vs exact {exact} is not a descale just above a power of two (descale {d:e})"
                    ));
                }
                let e = byte as i32 - 127;
                let artifact = e8m0_values(element, &x, pow2(-e), pow2(e));
                if !artifact.iter().zip(&want).all(|(a, b)| same(*a, *b)) {
                    fail(format!(
                        "torchao's RCEIL block is not the one of its byte {byte}: {want:?} vs {artifact:?}"
                    ));
                }
                let e = exact as i32 - 127;
                expect_fp8q = e8m0_values(element, &x, pow2(-e), pow2(e));
            }
        }
        if let Some(e) = &enc {
            let mine = e.scale_bytes[idx[0]];
            let codes_equal = idx.iter().all(|&i| e.codes[i] == ref_codes[case.ref_index(i)]);
            let two_level = case.format.scale() == ScaleFormat::E4m3;
            // E8M0's NaN is 255; float8_e4m3fn's are 0x7f and 0xff (torchao's NaN carries a sign)
            let nan_byte = |b: u8| if two_level { b & 0x7f == 0x7f } else { b == 255 };
            if nan_byte(byte) && !nan_byte(mine) {
                fail(format!("scale byte {mine}, torchao's is NaN ({byte})"));
            }
            match kind {
                // a NaN scale: the codes are don't-cares (fp8q stores 0, torchao the cast of x / scale)
                _ if nan_byte(byte) => {}
                // difference 5: NVFP4's tensor scale underflowed to 0: every code decodes to a
                // signed zero; fp8q stores ±0, torchao ±6 (x · (1 / 0) clamped)
                _ if two_level && e.tensor_scale == Some(0.0) => {
                    kind = Kind::ZeroTensorScale;
                    for &i in &idx {
                        let (a, b) = (e.codes[i], ref_codes[case.ref_index(i)]);
                        let sign = if case.input[i].is_sign_negative() { 8 } else { 0 };
                        if a != sign || b != sign | 7 || mine != byte {
                            fail(format!(
                                "zero tensor scale: code {a:x}, torchao {b:x}, x {:e}",
                                case.input[i]
                            ));
                        }
                    }
                }
                Kind::Identical => {
                    if mine != byte {
                        fail(format!("scale byte {mine}, reference {byte}"));
                    }
                    if !codes_equal {
                        let a: Vec<u8> = idx.iter().map(|&i| e.codes[i]).collect();
                        let b: Vec<u8> = idx.iter().map(|&i| ref_codes[case.ref_index(i)]).collect();
                        fail(format!("codes {a:02x?}, reference {b:02x?}"));
                    }
                }
                Kind::Byte0Clamp if mine != 0 => fail(format!("scale byte {mine}, spec 0")),
                Kind::RceilLog2 | Kind::RceilByte0 if mine != exact_rceil(amax, elem_max) => fail(format!(
                    "scale byte {mine}, exact RCEIL {}",
                    exact_rceil(amax, elem_max)
                )),
                Kind::InfBlock if mine != 255 => fail(format!("scale byte {mine} for an Inf block")),
                _ => {}
            }
        }
        let differs = !want.iter().zip(&fp8q).all(|(a, b)| same(*a, *b));
        let entry = report.kinds.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += usize::from(differs);
        for (j, (&e, &g)) in expect_fp8q.iter().zip(&fp8q).enumerate() {
            if !same(e, g) {
                fail(format!(
                    "element {} (x = {:e}, {kind:?}): fp8q {g:e} ({:#010x}), expected {e:e} ({:#010x})",
                    idx[j],
                    x[j],
                    g.to_bits(),
                    e.to_bits()
                ));
            }
        }
    }

    if let (Some(e), Some(bits)) = (&enc, case.tensor_scale_bits) {
        if !e.tensor_scale.is_some_and(|s| same(s, f32::from_bits(bits))) {
            report
                .mismatches
                .push(format!("{}: encoded tensor scale {:?}", case.name, e.tensor_scale));
        }
    }
    if let Some(bits) = case.tensor_scale_bits {
        let s = BlockQuantizer::for_tensor(format, case.input).tensor_scale();
        if !s.is_some_and(|s| same(s, f32::from_bits(bits))) {
            report.mismatches.push(format!(
                "{}: tensor scale {s:?} vs torchao {:e}",
                case.name,
                f32::from_bits(bits)
            ));
        }
    }
}

#[test]
fn manifest_covers_every_named_format_and_rule() {
    let f = load();
    assert!(f.manifest["torchao"].as_str().is_some() && f.manifest["torch"].as_str().is_some());
    let cs = cases(&f);
    for name in [
        "mxfp8_e4m3",
        "mxfp8_e5m2",
        "mxfp6_e3m2",
        "mxfp6_e2m3",
        "mxfp4",
        "mxint8",
        "nvfp4",
    ] {
        let named: BlockFormat = name.parse().unwrap();
        let of: Vec<&Case> = cs.iter().filter(|c| c.family == name).collect();
        assert!(!of.is_empty(), "{name}");
        for c in &of {
            assert_eq!(c.format.with_rule(ScaleRule::Floor), named, "{}", c.name);
        }
        if named.scale() == ScaleFormat::E8m0 && name != "mxint8" {
            for rule in ScaleRule::ALL {
                assert!(of.iter().any(|c| c.format.rule() == rule), "{name} {rule}");
            }
        }
    }
    // the reference's codes and scales have the sizes of its (padded) tensor
    for c in &cs {
        let numel: usize = c.ref_shape.iter().product();
        let per_byte = if c.format.element().n_bits() == 4 { 2 } else { 1 };
        assert_eq!(c.codes.len() * per_byte, numel, "{}", c.name);
        assert_eq!(c.scales.len() * c.format.block_size(), numel, "{}", c.name);
        assert_eq!(c.dequant.len(), numel, "{}", c.name);
    }
    // a ragged case and a case along another axis exist
    assert!(cs
        .iter()
        .any(|c| c.shape.last() != c.ref_shape.last() && !c.ref_transposed));
    assert!(cs.iter().any(|c| c.ref_transposed && c.axis == 0));
}

#[test]
fn quantize_blocks_matches_torchao_bit_for_bit() {
    let f = load();
    let mut report = Report::default();
    let cs = cases(&f);
    for case in &cs {
        check_case(case, case.format, &mut report);
    }
    eprintln!(
        "torch {}, torchao {}: {} cases",
        f.manifest["torch"],
        f.manifest["torchao"],
        cs.len()
    );
    for (kind, (blocks, differing)) in &report.kinds {
        eprintln!("  {kind:?}: {blocks} blocks, {differing} of them differing from the reference");
    }
    // the first mismatch of each block, with the block's count
    let mut first: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for m in &report.mismatches {
        let key = m.split(':').next().unwrap_or_default().to_string();
        first.entry(key).or_insert_with(|| (m.clone(), 0)).1 += 1;
    }
    assert!(
        report.mismatches.is_empty(),
        "{} mismatches in {} blocks:\n{}",
        report.mismatches.len(),
        first.len(),
        first
            .values()
            .take(150)
            .map(|(m, n)| format!("[{n}] {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // every documented difference was met, and really differs somewhere
    for kind in [Kind::Byte0Clamp, Kind::RceilLog2, Kind::RceilByte0, Kind::InfBlock] {
        let (blocks, differing) = report.kinds.get(&kind).copied().unwrap_or_default();
        assert!(
            blocks > 0 && differing > 0,
            "{kind:?}: {blocks} blocks, {differing} differing"
        );
    }
    assert!(report.kinds.get(&Kind::ZeroTensorScale).is_some_and(|k| k.0 > 0));
    let (identical, _) = report.kinds[&Kind::Identical];
    assert!(identical > 1000, "{identical} identical blocks");
}

/// The comparison can fail: each case checked under a wrong rule (FLOOR as CEIL, CEIL as FLOOR,
/// EVEN as FLOOR, RCEIL as FLOOR), or NVFP4 as MXFP4 with 16-element blocks, must mismatch.
#[test]
fn a_wrong_rule_fails_the_comparison() {
    let f = load();
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for case in cases(&f) {
        let wrong = match case.format.scale() {
            ScaleFormat::E4m3 => "e2m1@16".parse().unwrap(),
            _ => case.format.with_rule(match case.format.rule() {
                ScaleRule::Floor => ScaleRule::Ceil,
                ScaleRule::Ceil | ScaleRule::Even => ScaleRule::Floor,
                ScaleRule::Rceil => ScaleRule::Floor,
            }),
        };
        let mut report = Report::default();
        check_case(&case, wrong, &mut report);
        let key = format!("{}/{}", case.family, case.format.rule());
        *failed.entry(key).or_default() += usize::from(!report.mismatches.is_empty());
    }
    for (key, n) in &failed {
        assert!(*n > 0, "{key}: no case failed under a wrong rule");
    }
}

#[test]
fn nvfp4_all_zero_tensor_is_zeros() {
    // torchao 0.18 gives NaN here (0 / 0 in the tensor scale); fp8q keeps zeros
    let f: BlockFormat = "nvfp4".parse().unwrap();
    for shape in [[2usize, 32], [3, 20]] {
        let n = shape[0] * shape[1];
        let x: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { -0.0 } else { 0.0 }).collect();
        let mut q = vec![1f32; n];
        quantize_blocks(f, &x, &shape, -1, &mut q).unwrap();
        assert!(q.iter().all(|v| *v == 0.0), "{q:?}");
        assert_eq!(BlockQuantizer::for_tensor(f, &x).tensor_scale(), Some(0.0));
    }
}
