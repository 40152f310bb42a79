//! Decoding against Pillow: every file in `tests/data/images/` (made by
//! `tools/make_image_fixtures.py` from scikit-image's photographs) must decode to exactly the RGB
//! bytes of Pillow's `Image.open(p).convert('RGB')`, whose SHA-256 the script stored in
//! `expected.json`; files Pillow refuses must be refused. (That the validation transform gives
//! torchvision's tensor and logits on these files is checked in fp8q-ptq's `pillow_to_logits.rs`,
//! which sees the networks too.)

use std::path::PathBuf;

use fp8q_images::decode::decode;
use fp8q_images::ImageError;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Files we refuse on purpose although Pillow decodes them, with the error we give.
const REFUSED: &[(&str, &str)] = &[
    ("tif_1bit_g4.tif", "unsupported TIFF variant: compression 4"),
    // Pillow's grey-palette shortcut reads these 8-bit pixels as 1-bit ones
    (
        "bmp_8bit_bilevel_palette.bmp",
        "8-bit pixels with a grey-ramp or black-and-white palette",
    ),
    // Pillow's libjpeg-turbo 3 has a lossless mode, the libjpeg-turbo 2 code built here has not
    ("jlossless_sof3.jpg", "unsupported JPEG variant: lossless JPEG"),
];

/// Files with corrupt entropy-coded data: libjpeg recovers with a warning, but the recovered
/// coefficients can be far out of range, where libjpeg-turbo's SIMD IDCT (16-bit lanes, used by
/// Pillow's wheel) and its C IDCT (32-bit, compiled here) differ. For these the script also
/// stored Pillow's bytes with SIMD disabled (`JSIMD_FORCENONE=1`), `sha256_c`, which we must
/// match exactly.
const CORRUPT_DATA: &[&str] = &["jwarn_corrupt_scan_q85_160x107.jpg"];

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn expected() -> Value {
    let text = std::fs::read_to_string(data("images/expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What differs, from the stored channel sums and evenly spaced sample pixels.
fn describe_mismatch(got: &[u8], want: &Value) -> String {
    let n = want["samples"].as_str().unwrap().len() / 6;
    let samples: Vec<u8> = (0..n * 3)
        .map(|i| u8::from_str_radix(&want["samples"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let pixels = got.len() / 3;
    let (mut differ, mut max) = (0, 0);
    for k in 0..n {
        let i = k * pixels / n;
        let d = (0..3)
            .map(|c| (got[3 * i + c] as i32 - samples[3 * k + c] as i32).abs())
            .max()
            .unwrap();
        differ += (d > 0) as usize;
        max = max.max(d);
    }
    let sums: Vec<i64> = (0..3)
        .map(|c| got.iter().skip(c).step_by(3).map(|&v| v as i64).sum::<i64>())
        .collect();
    let want_sums: Vec<i64> = want["channel_sums"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    format!("{differ} of {n} sampled pixels differ (max diff {max}); channel sums {sums:?} vs Pillow {want_sums:?}")
}

#[test]
fn every_fixture_decodes_exactly_like_pillow() {
    let exp = expected();
    let images = exp["images"].as_object().unwrap();
    let mut failures = Vec::new();
    let mut exact = 0;
    for (name, want) in images {
        let path = data(&format!("images/{name}"));
        let got = decode(&path);
        if let Some((_, why)) = REFUSED.iter().find(|(n, _)| n == name) {
            match got {
                Err(e) if e.to_string().contains(why) => {}
                other => failures.push(format!("{name}: expected refusal '{why}', got {other:?}")),
            }
            continue;
        }
        match (got, want.get("error")) {
            (Err(ImageError::BadImage { path: p, why }), Some(_)) => {
                assert_eq!(p, path, "the error names the file");
                assert!(!why.is_empty());
            }
            (Err(e), Some(_)) => failures.push(format!("{name}: wrong error kind {e}")),
            (Ok(_), Some(pillow)) => failures.push(format!("{name}: decoded, but Pillow raises {pillow}")),
            (Err(e), None) => failures.push(format!("{name}: {e}")),
            (Ok(img), None) => {
                let dims = (
                    want["width"].as_u64().unwrap() as usize,
                    want["height"].as_u64().unwrap() as usize,
                );
                if (img.width, img.height) != dims {
                    failures.push(format!("{name}: {}×{} vs Pillow {dims:?}", img.width, img.height));
                } else if CORRUPT_DATA.contains(&name.as_str()) {
                    let c = want["sha256_c"].as_str().expect("sha256_c of a corrupt fixture");
                    if hex(&Sha256::digest(&img.data)) != c {
                        failures.push(format!("{name}: differs from Pillow's C path"));
                    } else {
                        exact += 1;
                    }
                } else if hex(&Sha256::digest(&img.data)) != want["sha256"].as_str().unwrap() {
                    failures.push(format!("{name}: {}", describe_mismatch(&img.data, want)));
                } else {
                    exact += 1;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{exact} of {} fixtures byte-identical to Pillow {} (libjpeg-turbo {})",
        images.len(),
        exp["meta"]["pillow"],
        exp["meta"]["libjpeg_turbo"]
    );
    assert!(exact >= 60, "only {exact} fixtures compared");
}

/// Pillow's YCbCr → RGB (uncompressed YCbCr TIFF) on every one of the 2^24 inputs: the SHA-256
/// of the RGB triples, Y slowest and Cr fastest, against the one `tools/make_image_fixtures.py`
/// computed with Pillow.
#[test]
fn ycbcr_to_rgb_is_pillows_on_every_input() {
    let ycc: Vec<u8> = (0u32..1 << 24)
        .flat_map(|v| [(v >> 16) as u8, (v >> 8) as u8, v as u8])
        .collect();
    let rgb = fp8q_images::decode::ycbcr::to_rgb(&ycc, 3);
    let want = expected()["ycbcr_to_rgb_all_sha256"].as_str().unwrap().to_string();
    assert_eq!(hex(&Sha256::digest(&rgb)), want);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = decode(&data("images/no_such_file.jpg")).unwrap_err();
    assert!(matches!(err, ImageError::Io { .. }), "{err}");
    assert!(err.to_string().contains("no_such_file.jpg"), "{err}");
}

/// Hostile input: truncations and byte changes of valid files of every format must give `Ok`
/// or `BadImage`, never a panic, an abort or a hang.
#[test]
fn mutated_files_are_decoded_or_refused_never_crash() {
    let files = [
        "jq100_444_64x48.jpg",
        "jtiny_17x9_420.jpg",
        "jprog444_q90_150x151.jpg",
        "jcmyk_prog_q80_97x131.jpg",
        "jrestart_rows1_prog_q80_163x245.jpg",
        "png_p_4bit.png",
        "png_rgb8_adam7.png",
        "bmp_p8.bmp",
        "bmp_rgb16_565_bitfields.bmp",
        "bmp_rgb16_os2.bmp",
        "bmp_bitfields32_xbgr.bmp",
        "bmp_rle8.bmp",
        "bmp_rle8_commands.bmp",
        "bmp_rle4_commands.bmp",
        "bmp_rle8_grey_ramp.bmp",
        "ppm_p3_plain.ppm",
        "pgm_p5_16bit.pgm",
        "tif_rgb_lzw.tiff",
        "tif_p8_lzw.tif",
        "tif_p4_raw.tif",
        "tif_l16be_deflate_predictor.tif",
        "tif_rgb16be_deflate.tif",
        "tif_cmyk_lzw.tif",
        "tif_orientation6.tif",
        "tif_tiled_lzw_rgb.tif",
        "tif_tiled_deflate_p8.tif",
        "tif_jpeg_ycbcr420_tiled.tif",
        "tif_jpeg_cmyk.tif",
        "tif_planar_rgb_lzw.tif",
        "tif_planar16_rgb_be_raw_rps5.tif",
        "tif_planar16_cmyk_deflate_predictor.tif",
        "tif_planar16_tiled_raw.tif",
        "tif_planar_tiled_noextra_rgba_deflate.tif",
        "tif_ycbcr22_lzw_tiles_refbw.tif",
        "tif_ycbcr42_lzw_damaged.tif",
        "tif_damaged_directory.tif",
        "gif_saved_as.jpg",
        "gif_interlaced_past_screen.gif",
        "gif_long_stream_clear_every9.gif",
        "pfm_grey_le.ppm",
        "ico_pil_bmp.ico",
        "pnm_p0cmyk_max1000.ppm",
        "webp_lossy_q80.webp",
        "webp_lossless_rgba.webp",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dir = std::env::temp_dir().join(format!("fp8q_decode_mutants_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut ok, mut refused) = (0, 0);
    for name in files {
        let orig = std::fs::read(data(&format!("images/{name}"))).unwrap();
        for round in 0..60 {
            let mut m = orig.clone();
            match round % 3 {
                0 => m.truncate(next() as usize % m.len()),
                1 => {
                    for _ in 0..1 + next() % 8 {
                        let i = next() as usize % m.len();
                        m[i] = next() as u8;
                    }
                }
                _ => {
                    // header damage: the first 64 bytes hold sizes, lengths and tables
                    let i = next() as usize % m.len().min(64);
                    m[i] = m[i].wrapping_add(1 + (next() % 255) as u8);
                }
            }
            let path = dir.join(name);
            std::fs::write(&path, &m).unwrap();
            match decode(&path) {
                Ok(img) => {
                    assert_eq!(img.data.len(), img.width * img.height * 3);
                    ok += 1;
                }
                Err(ImageError::BadImage { path: p, .. }) => {
                    assert_eq!(p, path);
                    refused += 1;
                }
                Err(e) => panic!("{name} round {round}: unexpected error kind {e}"),
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!("mutants: {ok} decoded, {refused} refused");
    assert!(refused > 100 && ok > 50, "{ok} decoded, {refused} refused");
}
