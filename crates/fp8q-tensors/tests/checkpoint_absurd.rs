//! Absurd but well-formed files: storages of 2^62 elements, zip entries that claim gigabytes
//! (or 2^62 bytes in zip64), nesting a million deep. Each reads or fails cleanly — a panic fails
//! the test, a stack overflow aborts it — and allocates at most a small multiple of its size.
//! (Its own test binary: the allocation record is process-wide.)

#[path = "common/mutate.rs"]
mod mutate;

use fp8q_tensors::checkpoint::Checkpoint;
use mutate::largest_allocation;

#[global_allocator]
static ALLOC: mutate::Tracking = mutate::Tracking;

/// The element budget of a tiny file is ~2^24 `f32` (64 MiB); nothing may ask for more.
const ALLOC_LIMIT: usize = 80 << 20;

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// A stored zip entry whose headers may lie about its sizes (`zip64`: in a zip64 extra field).
struct Entry<'a> {
    name: &'a str,
    data: &'a [u8],
    claimed: Option<(u64, u64)>,
    zip64: bool,
}

/// A zip archive of stored entries, written by hand so that its headers can claim any size.
fn raw_zip(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let (usize_, csize) = e.claimed.unwrap_or((e.data.len() as u64, e.data.len() as u64));
        let extra: Vec<u8> = if e.zip64 {
            [
                &1u16.to_le_bytes()[..],
                &16u16.to_le_bytes(),
                &usize_.to_le_bytes(),
                &csize.to_le_bytes(),
            ]
            .concat()
        } else {
            Vec::new()
        };
        let (u32_usize, u32_csize) = if e.zip64 {
            (u32::MAX, u32::MAX)
        } else {
            (usize_ as u32, csize as u32)
        };
        let offset = out.len() as u32;
        let common = |h: &mut Vec<u8>| {
            h.extend(if e.zip64 { 45u16 } else { 20u16 }.to_le_bytes()); // version needed
            h.extend(0u16.to_le_bytes()); // flags
            h.extend(0u16.to_le_bytes()); // stored
            h.extend(0u32.to_le_bytes()); // time, date
            h.extend(crc32(e.data).to_le_bytes());
            h.extend(u32_csize.to_le_bytes());
            h.extend(u32_usize.to_le_bytes());
            h.extend((e.name.len() as u16).to_le_bytes());
            h.extend((extra.len() as u16).to_le_bytes());
        };
        out.extend(b"PK\x03\x04");
        common(&mut out);
        out.extend(e.name.as_bytes());
        out.extend(&extra);
        out.extend(e.data);
        central.extend(b"PK\x01\x02");
        central.extend(if e.zip64 { 45u16 } else { 20u16 }.to_le_bytes()); // version made by
        common(&mut central);
        central.extend([0u8; 8]); // comment length, disk, internal and external attributes
        central.extend(0u16.to_le_bytes());
        central.extend(offset.to_le_bytes());
        central.extend(e.name.as_bytes());
        central.extend(&extra);
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06\0\0\0\0");
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

fn unicode(s: &str) -> Vec<u8> {
    [&[b'X'][..], &(s.len() as u32).to_le_bytes(), s.as_bytes()].concat()
}

/// `{'w': _rebuild_tensor_v2(<storage '0', class, numel>, 0, (2,), (1,), False, {})}`.
fn one_tensor_pickle(class: &str, numel: u64) -> Vec<u8> {
    let mut b = b"\x80\x02}".to_vec();
    b.extend(unicode("w"));
    b.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    b.push(b'(');
    b.extend(unicode("storage"));
    b.extend(format!("ctorch\n{class}\n").as_bytes());
    b.extend(unicode("0"));
    b.extend(unicode("cpu"));
    b.extend([0x8a, 8]);
    b.extend(numel.to_le_bytes());
    b.extend(b"tQK\x00K\x02\x85K\x01\x85\x89}tRs.");
    b
}

fn legacy_header() -> Vec<u8> {
    let mut b = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.".to_vec();
    b.extend(b"\x80\x02M\xe9\x03.");
    b.extend(b"\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u.");
    b
}

/// Storages of 2^62 elements, zip entries that claim gigabytes (or 2^62 bytes in zip64), and
/// nesting a million deep: each file reads or fails cleanly, without a large allocation.
/// (One test in this binary, so that the allocation record is this test's.)
#[test]
fn absurd_but_valid_declarations() {
    let pkl = one_tensor_pickle("FloatStorage", 2);
    let data = [0u8; 8];
    let zip_with = |pkl: &[u8], pkl_claim: Option<(u64, u64)>, data_claim: Option<(u64, u64)>, zip64: bool| {
        raw_zip(&[
            Entry {
                name: "archive/data.pkl",
                data: pkl,
                claimed: pkl_claim,
                zip64,
            },
            Entry {
                name: "archive/data/0",
                data: &data,
                claimed: data_claim,
                zip64,
            },
        ])
    };
    // the builder is right: the honest archive reads (plain and zip64)
    for zip64 in [false, true] {
        let good = Checkpoint::from_bytes(&zip_with(&pkl, None, None, zip64)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(good["w"].dims(), &[2]);
    }
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for class in ["FloatStorage", "ByteStorage", "BoolStorage", "DoubleStorage"] {
        let p = one_tensor_pickle(class, 1 << 62);
        cases.push((
            format!("zip, {class} of 2^62 elements"),
            zip_with(&p, None, None, false),
        ));
        let mut legacy = legacy_header();
        legacy.extend(&p);
        legacy.extend(b"\x80\x02]");
        legacy.extend(unicode("0"));
        legacy.extend(b"a.");
        legacy.extend((1u64 << 62).to_le_bytes());
        legacy.extend([0u8; 64]);
        cases.push((format!("legacy, {class} of 2^62 elements"), legacy));
    }
    for (what, pkl_claim, data_claim, zip64) in [
        (
            "data.pkl uncompressed size 2 GiB",
            Some((0x7fff_ffff, pkl.len() as u64)),
            None,
            false,
        ),
        (
            "data.pkl claims 4 GiB - 2",
            Some((0xffff_fffe, 0xffff_fffe)),
            None,
            false,
        ),
        ("storage claims 2 GiB", None, Some((0x7fff_ffff, 0x7fff_ffff)), false),
        ("storage claims 2^62 (zip64)", None, Some((1 << 62, 1 << 62)), true),
        ("data.pkl claims 2^62 (zip64)", Some((1 << 62, 1 << 62)), None, true),
        (
            "data.pkl claims u64::MAX (zip64)",
            Some((u64::MAX, u64::MAX)),
            None,
            true,
        ),
        ("storage uncompressed size 2^62 (zip64)", None, Some((1 << 62, 8)), true),
    ] {
        cases.push((what.to_string(), zip_with(&pkl, pkl_claim, data_claim, zip64)));
    }
    // nesting a million deep: dicts under 'state_dict', parameters, a persistent id, a JSON header
    const N: usize = 1_000_000;
    let mut dicts = b"\x80\x02".to_vec();
    for _ in 0..N {
        dicts.push(b'}');
        dicts.extend(unicode("state_dict"));
    }
    dicts.extend(b"N");
    dicts.extend(std::iter::repeat_n(b's', N));
    dicts.push(b'.');
    let mut params = b"\x80\x02}".to_vec();
    params.extend(unicode("w"));
    for _ in 0..N {
        params.extend(b"ctorch._utils\n_rebuild_parameter\n");
    }
    params.extend(b"N");
    params.extend(std::iter::repeat_n(&b"\x85R"[..], N).flatten());
    params.extend(b"s.");
    let mut persid = b"\x80\x02}".to_vec();
    persid.extend(unicode("w"));
    persid.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    persid.extend(std::iter::repeat_n(b']', N));
    persid.extend(std::iter::repeat_n(b'a', N - 1));
    persid.extend(b"QK\x00))tRs."); // _rebuild_tensor_v2(<pid [[[…]]]>, 0, (), ())
    for (what, pk) in [("dicts", &dicts), ("parameters", &params), ("persistent id", &persid)] {
        cases.push((format!("{what} nested {N} deep (zip)"), zip_with(pk, None, None, false)));
        let mut legacy = legacy_header();
        legacy.extend(pk);
        legacy.extend(b"\x80\x02].");
        cases.push((format!("{what} nested {N} deep (legacy)"), legacy));
    }
    // in the metadata, in an unknown field of a tensor (skipped by serde), as a tensor's shape
    for (before, after) in [
        (
            &b"{\"__metadata__\":"[..],
            &b",\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}"[..],
        ),
        (
            b"{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":",
            b"}}",
        ),
        (b"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4],\"shape\":", b"}}"),
    ] {
        let json = [before, &vec![b'['; N], &vec![b']'; N], after].concat();
        let mut st = (json.len() as u64).to_le_bytes().to_vec();
        st.extend(&json);
        st.extend([0u8; 4]);
        cases.push((format!("safetensors header nested {N} deep"), st));
    }

    for (what, bytes) in &cases {
        mutate::LARGEST.store(0, std::sync::atomic::Ordering::Relaxed);
        let r = std::panic::catch_unwind(|| Checkpoint::from_bytes(bytes));
        match r {
            // a stored entry is read by its compressed size: a wrong uncompressed size is harmless
            Ok(Ok(t)) if what.contains("uncompressed") => eprintln!("{what}: read {} tensors", t.len()),
            Ok(Ok(t)) => panic!("{what}: read {} tensors", t.len()),
            Ok(Err(e)) => eprintln!("{what}: {e}"),
            Err(_) => panic!("{what}: panicked"),
        }
        // The pickle arena takes ~50 bytes per value and a value takes at least one input
        // byte: memory is linear in the input, like Python's unpickler.
        let limit = ALLOC_LIMIT.max(16 * bytes.len());
        eprintln!(
            "  largest allocation {} bytes, input {} bytes",
            largest_allocation(),
            bytes.len()
        );
        assert!(
            largest_allocation() <= limit,
            "{what}: an allocation of {} bytes",
            largest_allocation()
        );
    }
}
