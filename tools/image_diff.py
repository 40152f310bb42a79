"""Differential audit of fp8q's image decoding and validation transform against the reference.

Generates a broad battery of image files (Pillow's encoders, libjpeg-turbo's `cjpeg` where it is
installed, tifffile, and bytes assembled by hand for what no encoder writes), then compares, for
each file:

* fp8q's decode (`fp8q_images::decode::decode`) with Pillow's `Image.open(p).convert('RGB')`,
  byte for byte (or both refusing it);
* fp8q's validation transform, as the loader computes it (`Transform::load`: a JPEG's needed
  columns only, fused resize) and as decode + `Transform::apply`, with torchvision's
  `Compose([Resize(248), CenterCrop(224), ToTensor(), Normalize(mean, std)])` on Pillow's image,
  bit for bit (float32).

fp8q's side comes from `crates/fp8q-images/examples/image_dump.rs` (one JSON line per path). Files
fp8q refuses on purpose are listed in `REFUSED_OK` (name pattern → error text); every other
difference is reported as a mismatch, with details (bytes differing, largest difference).

    CARGO_TARGET_DIR=/work/target-img cargo build --release -p fp8q-images --example image_dump
    python3 tools/image_diff.py [--out /tmp/img-audit] [--bin PATH/TO/image_dump] [--only SUBSTRING]
    python3 tools/image_diff.py --mutate 3000 [--seed S] --only gif_    # damaged copies

With `--mutate N`, N damaged copies (1 to 4 bytes changed) of the battery's files are compared
instead: fp8q must decode what Pillow decodes or refuse; decoding other pixels than Pillow, or
decoding what Pillow refuses, is a failure.

Exit status 1 when anything mismatches. Dev-time only: needs Pillow, numpy, torch, torchvision,
scikit-image (sample photographs), tifffile; `cjpeg` (Debian libjpeg-turbo-progs) optional.
"""
import argparse
import fnmatch
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image, ImageCms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_image_fixtures as mf  # noqa: E402  (photographs and hand encoders)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# torchvision on a Resize output larger than this is skipped (minutes and gigabytes)
MAX_RESIZED_PIXELS = 40_000_000

# Files fp8q refuses on purpose although Pillow decodes them: name pattern → part of the error.
REFUSED_OK = {
    "tif_*ojpeg*": "unsupported TIFF variant: compression 6",
    "tif_*g3*": "unsupported TIFF variant: compression 3",
    "tif_*g4*": "unsupported TIFF variant: compression 4",
    "jlossless_*": "unsupported JPEG variant: lossless JPEG",
}

# JPEGs with corrupt entropy-coded data: libjpeg-turbo's SIMD IDCT (Pillow's wheel) and its C
# IDCT (compiled by fp8q) differ on out-of-range recovered coefficients; fp8q must match Pillow
# with SIMD off (JSIMD_FORCENONE=1), see crates/fp8q-images/src/decode/jpeg.rs.
C_PATH_OK = ["jedit_corrupt_scan*"]


def pillow_c_path_sha(path):
    code = ("import sys, hashlib, numpy as np; from PIL import Image\n"
            "print(hashlib.sha256(np.asarray(Image.open(sys.argv[1]).convert('RGB')).tobytes()).hexdigest())")
    env = dict(os.environ, JSIMD_FORCENONE="1")
    return subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------------------------
# sources

def sources():
    """Photographs and synthetic images that stress clamping and edges."""
    rng = np.random.default_rng(1234)
    photos = [mf.photo(n) for n in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg",
                                    "motorcycle_left.png")]
    noise = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    bars = np.zeros((240, 320, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
               (255, 255, 255), (0, 0, 0)]
    for i, c in enumerate(colours):
        bars[:, i * 40:(i + 1) * 40] = c
    bars[::7, ::5] = 255 - bars[::7, ::5]  # sharp saturated edges everywhere
    yy, xx = np.mgrid[0:256, 0:256]
    grad = np.dstack([xx, yy, (xx + yy) // 2]).astype(np.uint8)
    return photos + [noise, Image.fromarray(bars), Image.fromarray(grad)]


def pick(srcs, k, size):
    im = srcs[k % len(srcs)]
    return im.resize(size, Image.LANCZOS) if size != im.size else im


def saved(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def cjpeg(im, *args):
    """`cjpeg`'s file, or None when it is not installed or refuses the options (e.g. more than
    10 blocks per MCU)."""
    try:
        return mf.cjpeg(im, *args)
    except subprocess.CalledProcessError as e:
        print(f"cjpeg {' '.join(args)}: {e.stderr.decode(errors='replace').strip()}")
        return None


def set_app14_transform(data, transform):
    # FF EE len(2) 'Adobe' version(2) flags0(2) flags1(2) transform(1)
    i = data.index(b"\xff\xee")
    assert data[i + 4:i + 9] == b"Adobe"
    j = i + 9 + 6
    return data[:j] + bytes([transform]) + data[j + 1:]


def sof_sampling(data, factors):
    """Rewrite the sampling factors byte of each component in the SOF (hand-set layouts)."""
    for m in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        i = data.find(m)
        if i >= 0:
            break
    out = bytearray(data)
    n = out[i + 9]
    for c in range(n):
        out[i + 10 + 3 * c + 1] = factors[c]
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# the battery: (name, bytes)

def jpeg_battery(srcs):
    f = []
    for q in range(1, 101):  # every quality, rotating subsampling, sizes and sources
        ss = q % 3
        size = (40 + (q * 37) % 211, 30 + (q * 53) % 187)
        f.append((f"jq{q:03d}_s{ss}_{size[0]}x{size[1]}.jpg",
                  mf.jpeg_bytes(pick(srcs, q, size), quality=q, subsampling=ss)))
    for k, ss in enumerate((0, 1, 2)):
        for prog, opt in ((True, False), (False, True), (True, True)):
            size = (123 + 17 * k, 91 + 11 * k)
            f.append((f"jprog{int(prog)}_opt{int(opt)}_s{ss}_{size[0]}x{size[1]}.jpg",
                      mf.jpeg_bytes(pick(srcs, k + 3, size), quality=70 + 8 * k, subsampling=ss,
                                    progressive=prog, optimize=opt)))
    for k, (kind, n) in enumerate((("blocks", 1), ("blocks", 3), ("blocks", 17), ("rows", 1),
                                   ("rows", 2), ("rows", 5))):
        for ss in (0, 2):
            size = (131 + 13 * k, 97 + 7 * k)
            f.append((f"jrestart_{kind}{n}_s{ss}_{size[0]}x{size[1]}.jpg",
                      mf.jpeg_bytes(pick(srcs, k, size), quality=85, subsampling=ss,
                                    **{f"restart_marker_{kind}": n}, progressive=(k % 2 == 1))))
    for k, q in enumerate((5, 50, 95)):
        size = (149 + k, 113 - k)
        g = pick(srcs, k, size).convert("L")
        f.append((f"jgray_q{q}_{size[0]}x{size[1]}.jpg", mf.jpeg_bytes(g, quality=q)))
        f.append((f"jgray_prog_q{q}_{size[0]}x{size[1]}.jpg", mf.jpeg_bytes(g, quality=q, progressive=True)))
    f.append(("jgray_restart_rows1_77x53.jpg", mf.jpeg_bytes(pick(srcs, 2, (77, 53)).convert("L"), quality=80,
                                                             restart_marker_rows=1)))
    # CMYK: Adobe inverted (Pillow's), Adobe marker removed, YCCK (Adobe transform 2), subsampled
    for k, q in enumerate((30, 90)):
        size = (133 + k, 87 + k)
        cm = pick(srcs, k + 5, size).convert("CMYK")
        b = mf.jpeg_bytes(cm, quality=q)
        f.append((f"jcmyk_adobe_q{q}_{size[0]}x{size[1]}.jpg", b))
        f.append((f"jcmyk_noadobe_q{q}_{size[0]}x{size[1]}.jpg", mf.strip_segment(b, 0xEE)))
        f.append((f"jcmyk_as_ycck_q{q}_{size[0]}x{size[1]}.jpg", set_app14_transform(b, 2)))
        f.append((f"jcmyk_prog_q{q}_{size[0]}x{size[1]}.jpg", mf.jpeg_bytes(cm, quality=q, progressive=True)))
        f.append((f"jcmyk_s2_q{q}_{size[0]}x{size[1]}.jpg", mf.jpeg_bytes(cm, quality=q, subsampling=2)))
    # RGB without colour transform, and YCbCr data flagged as RGB (Adobe transform 0)
    rgbk = mf.jpeg_bytes(pick(srcs, 1, (97, 61)), quality=88, keep_rgb=True, subsampling=0)
    f.append(("jrgb_keep_97x61.jpg", rgbk))
    ycc = mf.jpeg_bytes(pick(srcs, 1, (97, 61)), quality=88, subsampling=2)
    f.append(("jycc_no_jfif_97x61.jpg", mf.strip_segment(ycc, 0xE0)))
    # odd and tiny sizes, very wide and very tall
    for k, (w, h) in enumerate(((1, 1), (1, 7), (7, 1), (1, 300), (300, 1), (2, 2), (7, 9), (17, 3),
                                (3, 17), (9, 7), (15, 15), (16, 16), (33, 31), (2000, 3), (3, 2000),
                                (8192, 9), (9, 4100), (20000, 2), (248, 248), (224, 224), (249, 250),
                                (247, 300), (100, 60), (60, 100), (223, 1000))):
        for ss in (0, 1, 2):
            if ss and k % 2:
                continue
            f.append((f"jsize_{w}x{h}_s{ss}.jpg", mf.jpeg_bytes(pick(srcs, k, (w, h)), quality=85, subsampling=ss)))
    # EXIF orientation and ICC profiles: Image.open applies neither
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        f.append((f"jexif_orient{o}_71x43.jpg", mf.jpeg_bytes(pick(srcs, o, (71, 43)), quality=80,
                                                            exif=exif.tobytes(),
                                                            icc_profile=srgb if o % 2 else lab)))
    big_icc = srgb + bytes(150_000)  # split over several APP2 segments
    f.append(("jicc_multi_segment_80x60.jpg", mf.jpeg_bytes(pick(srcs, 0, (80, 60)), quality=80, icc_profile=big_icc)))
    # hand-set sampling factors (SOF byte edits on a file whose MCU layout stays valid): Pillow
    # writes 4:4:4, so only layouts whose luma factors keep chroma at 1x1 are safe with cjpeg
    for spec in ("1x1", "2x1", "2x2", "1x2", "4x1", "4x2", "1x4", "2x4", "3x1", "3x2", "1x3", "4x4",
                 "2x2,1x1,1x1", "2x2,2x1,1x1", "2x2,1x2,2x1", "1x1,2x2,2x2", "2x1,1x2,1x1"):
        for k, extra in enumerate(((), ("-progressive",), ("-arithmetic",), ("-restart", "2"))):
            size = (101 + 3 * k, 67 + 5 * k)
            b = cjpeg(pick(srcs, k + len(spec), size), "-quality", "80", "-sample", spec, *extra)
            if b is not None:
                tag = "".join(e.strip("-")[:4] for e in extra)
                f.append((f"jcj_{spec.replace(',', '_')}_{tag or 'base'}_{size[0]}x{size[1]}.jpg", b))
    for k, extra in enumerate((("-grayscale", "-arithmetic"), ("-grayscale", "-progressive", "-arithmetic"),
                               ("-arithmetic", "-restart", "1B"), ("-dct", "float"), ("-dct", "fast"),
                               ("-optimize",), ("-baseline", "-quality", "5"), ("-quality", "100"),
                               ("-rgb",), ("-rgb", "-arithmetic"))):
        b = cjpeg(pick(srcs, k, (88 + k, 59 + k)), *extra)
        if b is not None:
            f.append((f"jcj_misc{k}_{'_'.join(e.strip('-') for e in extra)}.jpg", b))
    # hand edits
    base = mf.jpeg_bytes(pick(srcs, 2, (120, 80)), quality=85, subsampling=2)
    f.append(("jedit_trailing_garbage.jpg", base + b"garbage after EOI" * 10))
    f.append(("jedit_two_images.jpg", base + mf.jpeg_bytes(pick(srcs, 3, (40, 30)), quality=50)))
    f.append(("jedit_fill_ff_before_sos.jpg", mf.insert_before_sos(base, b"\xff\xff\xff")))
    f.append(("jedit_com_marker.jpg", mf.insert_before_sos(base, b"\xff\xfe\x00\x07hello")))
    f.append(("jedit_app15.jpg", mf.insert_before_sos(base, b"\xff\xef\x00\x04ab")))
    f.append(("jedit_unknown_marker_ff02.jpg", mf.insert_before_sos(base, b"\xff\x02")))
    f.append(("jedit_corrupt_scan.jpg", mf.corrupt_scan(base, every=53)))
    f.append(("jedit_corrupt_scan_prog.jpg", mf.corrupt_scan(
        mf.jpeg_bytes(pick(srcs, 4, (120, 80)), quality=85, progressive=True), every=71)))
    sof = base.index(b"\xff\xc0")
    f.append(("jedit_12bit_flag.jpg", base[:sof + 4] + b"\x0c" + base[sof + 5:]))
    f.append(("jedit_lossless_sof3_flag.jpg", base[:sof + 1] + b"\xc3" + base[sof + 2:]))
    f.append(("jedit_height0.jpg", base[:sof + 5] + b"\x00\x00" + base[sof + 7:]))
    # truncation at many points, baseline, progressive, arithmetic
    prog = mf.jpeg_bytes(pick(srcs, 1, (150, 100)), quality=85, progressive=True)
    arith = cjpeg(pick(srcs, 0, (150, 100)), "-arithmetic", "-quality", "85")
    for kind, b in (("base", base), ("prog", prog), ("arith", arith)):
        if b is None:
            continue
        sos = b.index(b"\xff\xda")
        for cut in (20, sos - 10, sos + 14, len(b) // 10, len(b) // 3, len(b) // 2, len(b) * 9 // 10,
                    len(b) - 40, len(b) - 3, len(b) - 2, len(b) - 1):
            f.append((f"jtrunc_{kind}_{cut}of{len(b)}.jpg", b[:cut]))
    # lossless JPEG (SOF3; written by imagecodecs' libjpeg-turbo 3 when it is installed)
    try:
        import imagecodecs

        for k, pred in enumerate((1, 7)):
            a = np.asarray(pick(srcs, k, (67, 45)))
            f.append((f"jlossless_rgb_p{pred}.jpg", imagecodecs.jpeg8_encode(a, lossless=True, predictor=pred)))
    except (ImportError, TypeError, ValueError) as e:
        print(f"no lossless JPEG: {e}")
    # other formats under a JPEG name, and a JPEG under a PNG name
    f.append(("png_named.JPEG", saved(pick(srcs, 1, (61, 43)), "PNG")))
    f.append(("jpeg_named.png", base))
    return f


def png_battery(srcs):
    f = []
    small = pick(srcs, 0, (83, 57))
    a = np.asarray(small)
    grey = np.asarray(small.convert("L"))
    rng = np.random.default_rng(5)
    for bits in (1, 2, 4, 8, 16):
        v = (grey.astype(np.uint32) * (2 ** bits - 1) // 255) if bits < 16 else grey.astype(np.uint32) * 257 + 3
        for il in (False, True):
            f.append((f"png_grey{bits}_il{int(il)}.png", mf.png_bytes(v, 0, bits, interlace=il)))
        f.append((f"png_grey{bits}_trns.png", mf.png_bytes(v, 0, bits, chunks=[(b"tRNS", struct.pack(">H", int(v[3, 3])))])))
    for bits in (8, 16):
        al = rng.integers(0, 2 ** bits, grey.shape)
        g = grey.astype(np.uint32) * (257 if bits == 16 else 1)
        f.append((f"png_la{bits}.png", mf.png_bytes(np.dstack([g, al]), 4, bits)))
        f.append((f"png_la{bits}_il.png", mf.png_bytes(np.dstack([g, al]), 4, bits, interlace=True)))
        c = a.astype(np.uint32) * (257 if bits == 16 else 1) + (rng.integers(0, 257, a.shape) if bits == 16 else 0)
        f.append((f"png_rgb{bits}.png", mf.png_bytes(c, 2, bits)))
        f.append((f"png_rgb{bits}_il.png", mf.png_bytes(c, 2, bits, interlace=True)))
        f.append((f"png_rgba{bits}.png", mf.png_bytes(np.dstack([c, rng.integers(0, 2 ** bits, grey.shape)]), 6, bits)))
        f.append((f"png_rgba{bits}_il.png", mf.png_bytes(np.dstack([c, rng.integers(0, 2 ** bits, grey.shape)]), 6, bits,
                                                         interlace=True)))
        trns = struct.pack(">HHH", *[int(x) for x in c[5, 5]])
        f.append((f"png_rgb{bits}_trns.png", mf.png_bytes(c, 2, bits, chunks=[(b"tRNS", trns)])))
    for bits in (1, 2, 4, 8):
        n = 2 ** bits
        pal = rng.integers(0, 256, (n, 3)).astype(np.uint8).tobytes()
        idx = (grey.astype(np.uint32) * n // 256)
        f.append((f"png_pal{bits}.png", mf.png_bytes(idx, 3, bits, chunks=[(b"PLTE", pal)])))
        f.append((f"png_pal{bits}_il.png", mf.png_bytes(idx, 3, bits, interlace=True, chunks=[(b"PLTE", pal)])))
        f.append((f"png_pal{bits}_trns.png", mf.png_bytes(idx, 3, bits, chunks=[(b"PLTE", pal),
                                                                                 (b"tRNS", bytes(range(0, 256, 37)))])))
    # ancillary chunks Pillow reads but does not apply in convert('RGB')
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    chunks = [(b"gAMA", struct.pack(">I", 100000)), (b"cHRM", bytes(32)), (b"sBIT", b"\x05\x06\x05"),
              (b"pHYs", struct.pack(">IIB", 3780, 3780, 1)), (b"tEXt", b"Comment\x00hi")]
    f.append(("png_rgb8_gama_chrm_sbit.png", mf.png_bytes(a, 2, 8, chunks=chunks)))
    f.append(("png_rgb8_iccp.png", mf.png_bytes(a, 2, 8, chunks=[(b"iCCP", b"icc\x00\x00" + zlib.compress(srgb))])))
    f.append(("png_rgb8_srgb.png", mf.png_bytes(a, 2, 8, chunks=[(b"sRGB", b"\x00"), (b"gAMA", struct.pack(">I", 45455))])))
    f.append(("png_pil_rgba.png", saved(Image.merge("RGBA", (*small.split(), small.convert("L"))), "PNG")))
    f.append(("png_pil_optimize.png", saved(small, "PNG", optimize=True)))
    f.append(("png_pil_p_trns.png", saved(small.quantize(200), "PNG", transparency=7)))
    f.append(("png_pil_l_1x1.png", saved(small.convert("L").resize((1, 1)), "PNG")))
    f.append(("png_pil_rgb_1x500.png", saved(small.resize((1, 500)), "PNG")))
    f.append(("png_pil_rgb_3000x2.png", saved(small.resize((3000, 2)), "PNG")))
    f.append(("png_pil_big_1200x900.png", saved(pick(srcs, 2, (1200, 900)), "PNG", compress_level=1)))
    f.append(("png_pil_i16.png", saved(Image.fromarray((grey.astype(np.uint16) * 200)), "PNG")))
    # APNG: the default image first
    fr = [pick(srcs, k, (64, 48)) for k in range(3)]
    f.append(("png_apng.png", saved(fr[0], "PNG", save_all=True, append_images=fr[1:], duration=100)))
    f.append(("png_apng_default_not_frame.png", saved(fr[0], "PNG", save_all=True, append_images=fr[1:],
                                                       default_image=True, duration=100)))
    # damaged files
    good = saved(small, "PNG")
    iend = good.rindex(b"IEND") - 4
    f.append(("png_no_iend.png", good[:iend]))
    f.append(("png_trailing.png", good + b"junk" * 20))
    f.append(("png_truncated_half.png", good[:len(good) // 2]))
    f.append(("png_truncated_end.png", good[:iend - 10]))
    idat = good.index(b"IDAT")
    n = struct.unpack(">I", good[idat - 4:idat])[0]
    crc_at = idat + 4 + n
    f.append(("png_bad_idat_crc.png", good[:crc_at] + bytes(4) + good[crc_at + 4:]))
    f.append(("png_bad_ancillary_crc.png", mf.png_bytes(a, 2, 8, chunks=[(b"tEXt", b"a\x00b")])
              .replace(b"tEXta\x00b" + struct.pack(">I", zlib.crc32(b"tEXta\x00b")), b"tEXta\x00b\x00\x00\x00\x00")))
    split = mf.png_bytes(a, 2, 8)
    i = split.index(b"IDAT")
    n = struct.unpack(">I", split[i - 4:i])[0]
    data = split[i + 4:i + 4 + n]
    parts = [data[:10], b"", data[10:200], data[200:]]
    split = split[:i - 4] + b"".join(mf.png_chunk(b"IDAT", p) for p in parts) + split[i + 8 + n:]
    f.append(("png_split_idat.png", split))
    # truncation and corruption at every point near the end (Pillow decodes when the data holds
    # every row), interlaced too
    for kind, b in (("plain", good), ("adam7", mf.png_bytes(np.asarray(small.resize((37, 23))), 2, 8, interlace=True))):
        e = b.rindex(b"IEND") - 4
        for cut in list(range(e - 24, e + 12)) + [len(b) // 2, len(b) * 4 // 5, len(b) * 19 // 20]:
            f.append((f"png_cut_{kind}_{cut}of{len(b)}.png", b[:cut]))
        for k in (5, 8, 12, 30, 200):
            bad = bytearray(b)
            bad[e - k] ^= 0x55
            f.append((f"png_flip_{kind}_{e - k}.png", bytes(bad)))
    f.append(("png_unknown_critical.png", mf.png_bytes(a, 2, 8, chunks=[(b"CRIT", b"xyz")])))
    f.append(("png_broken_iccp.png", mf.png_bytes(a, 2, 8, chunks=[(b"iCCP", b"icc\x00\x00" + b"not zlib")])))
    f.append(("png_broken_ztxt.png", mf.png_bytes(a, 2, 8, chunks=[(b"zTXt", b"k\x00\x00" + b"not zlib")])))
    f.append(("png_plte_in_rgb.png", mf.png_bytes(a, 2, 8, chunks=[(b"PLTE", bytes(range(30)))])))
    f.append(("png_no_idat.png", mf.png_bytes(a, 2, 8).replace(b"IDAT", b"IDAx")))
    return f


def pnm_battery(srcs):
    f = []
    small = pick(srcs, 3, (45, 31))
    a = np.asarray(small).astype(np.uint32)
    g = np.asarray(small.convert("L")).astype(np.uint32)
    for maxval in (1, 15, 100, 254, 255, 256, 1000, 4095, 65535):
        f.append((f"pgm_p5_max{maxval}.pgm", mf.pnm_bytes(g * maxval // 255, "P5", maxval)))
        f.append((f"ppm_p6_max{maxval}.ppm", mf.pnm_bytes(a * maxval // 255, "P6", maxval)))
        f.append((f"pgm_p2_max{maxval}.pgm", mf.pnm_bytes(g[:9, :13] * maxval // 255, "P2", maxval)))
        f.append((f"ppm_p3_max{maxval}.ppm", mf.pnm_bytes(a[:9, :13] * maxval // 255, "P3", maxval)))
    f.append(("pgm_p5_16bit_full.pgm", mf.pnm_bytes(g * 257, "P5", 65535)))
    f.append(("ppm_p6_comments.ppm", b"P6 # c1\n# c2\n45 #c3\n31\n# c4\n255\n" + np.asarray(small).tobytes()))
    f.append(("ppm_p6_tabs.ppm", b"P6\t45\t31\t255\t" + np.asarray(small).tobytes()))
    f.append(("pgm_p2_over_maxval.pgm", b"P2\n3 2\n100\n1 2 3\n4 200 6\n"))
    f.append(("pgm_p2_short.pgm", b"P2\n3 2\n255\n1 2 3\n4\n"))
    f.append(("ppm_p6_truncated.ppm", mf.pnm_bytes(a, "P6", 255)[:-50]))
    f.append(("ppm_p6_trailing.ppm", mf.pnm_bytes(a, "P6", 255) + b"\n\n extra"))
    f.append(("pbm_p1.pgm", b"P1\n5 3\n1 0 1 0 1\n0 1 0 1 0\n11111\n"))
    f.append(("pbm_p4.ppm", saved(small.convert("1"), "PPM")))
    f.append(("pgm_pil_i16.pgm", saved(Image.fromarray((g * 200).astype(np.uint16)), "PPM")))
    f.append(("pnm_pfm_named.ppm", b"Pf\n2 2\n-1.0\n" + np.array([0.1, 0.5, 0.9, 2.0], "<f4").tobytes()))
    # PFM: grey floats, rows bottom up, byte order from the scale's sign; F -> L clips and truncates
    fl = (g.astype(np.float32) * 1.37 - 40.3).astype(np.float32)
    fl[0, :6] = [np.nan, np.inf, -np.inf, -0.0, 254.99998, 255.0]
    for scale, order in ((b"-1.0", "<f4"), (b"1.0", ">f4"), (b"-0.004", "<f4"), (b"2e3", ">f4"), (b"-1_0", "<f4")):
        f.append((f"pnm_pfm_scale{scale.decode()}.pfm", b"Pf\n45 31\n" + scale + b"\n" + fl.astype(order).tobytes()))
    f.append(("pnm_pfm_pil.pfm", saved(Image.fromarray(fl, "F"), "PPM")))
    f.append(("pnm_pfm_comment.pfm", b"Pf # c\n45 31\n# s\n-1\n" + fl.astype("<f4").tobytes()))
    for scale in (b"0", b"-0.0", b"nan", b"inf", b"1__0", b"_1", b"x"):
        f.append((f"pnm_pfm_bad_scale{scale.decode()}.pfm", b"Pf\n2 1\n" + scale + b"\n" + bytes(8)))
    f.append(("pnm_pfm_truncated.pfm", b"Pf\n45 31\n-1\n" + fl.astype("<f4").tobytes()[:-3]))
    f.append(("pnm_pfm_colour.pfm", b"PF\n2 1\n-1\n" + bytes(24)))
    # Pillow's own magics: P0CMYK, PyCMYK, PyRGBA, PyP
    cmyk = np.asarray(small.convert("CMYK")).astype(np.uint32)
    rgba = np.dstack([np.asarray(small), g.astype(np.uint8)]).astype(np.uint32)
    for maxval in (255, 100, 1000, 65535):
        for magic, arr in ((b"P0CMYK", cmyk), (b"PyCMYK", cmyk), (b"PyRGBA", rgba), (b"PyP", g)):
            v = arr * maxval // 255
            data = v.astype(">u2" if maxval > 255 else np.uint8).tobytes()
            f.append((f"pnm_{magic.decode()}_max{maxval}.ppm", magic + b"\n45 31\n%d\n" % maxval + data))
    f.append(("pnm_P0CMYK_no_space.ppm", b"P0CMYK45 31 255 " + np.asarray(small.convert("CMYK")).tobytes()))
    f.append(("pnm_P0CMYK_truncated.ppm", b"P0CMYK 45 31 255 " + np.asarray(small.convert("CMYK")).tobytes()[:-9]))
    f.append(("pnm_P0_other.ppm", b"P0RGB 2 1 255 " + bytes(6)))
    return f


def bmp_battery(srcs):
    f = []
    small = pick(srcs, 4, (53, 37))
    arr = np.asarray(small)
    h, w = arr.shape[:2]
    f.append(("bmp_pil_rgb_odd.bmp", saved(pick(srcs, 1, (51, 33)), "BMP")))
    f.append(("bmp_pil_1bit_odd.bmp", saved(pick(srcs, 1, (37, 21)).convert("1"), "BMP")))
    f.append(("bmp_pil_p4.bmp", saved(small.quantize(16), "BMP", bits=4) if False else saved(small.quantize(16), "BMP")))
    f.append(("bmp_pil_p8_odd.bmp", saved(pick(srcs, 2, (39, 29)).quantize(100), "BMP")))
    f.append(("bmp_pil_rgba.bmp", saved(Image.merge("RGBA", (*small.split(), small.convert("L"))), "BMP")))
    rows24 = b"".join(r[:, ::-1].tobytes() + bytes(-(3 * w) % 4) for r in arr[::-1])
    f.append(("bmp_rgb24_topdown.bmp", mf.bmp_file(w, h, 24, 0, b"".join(
        r[:, ::-1].tobytes() + bytes(-(3 * w) % 4) for r in arr), top_down=True)))
    f.append(("bmp_rgb24_v5.bmp", mf.bmp_file(w, h, 24, 0, rows24, header=124)))
    f.append(("bmp_rgb24_v4.bmp", mf.bmp_file(w, h, 24, 0, rows24, header=108)))
    f.append(("bmp_rgb24_os2v1.bmp", mf.bmp_file(w, h, 24, 0, rows24, header=12)))
    f.append(("bmp_rgb24_os2v2_64.bmp", mf.bmp_file(w, h, 24, 0, rows24, header=64)))
    f.append(("bmp_rgb24_truncated.bmp", mf.bmp_file(w, h, 24, 0, rows24)[:-100]))
    bgra = np.dstack([arr[..., ::-1], np.asarray(small.convert("L"))])[::-1]
    f.append(("bmp_rgb32_bi_rgb_alpha.bmp", mf.bmp_file(w, h, 32, 0, bgra.tobytes())))
    f.append(("bmp_rgb32_bitfields_argb_v5.bmp", mf.bmp_file(w, h, 32, 3, bgra.tobytes(), header=124,
                                                             masks=[0xFF0000, 0xFF00, 0xFF, 0xFF000000])))
    f.append(("bmp_rgb32_bitfields_bgr_v3.bmp", mf.bmp_file(w, h, 32, 3, bgra.tobytes(), header=56,
                                                            masks=[0xFF0000, 0xFF00, 0xFF, 0])))
    f.append(("bmp_rgb32_bitfields_odd_masks.bmp", mf.bmp_file(w, h, 32, 3, bgra.tobytes(),
                                                               masks=[0x3FF00000, 0xFFC00, 0x3FF])))
    f.append(("bmp_rgb16_565_v5.bmp", mf.bmp_file(w, h, 16, 3, mf.bmp_rows16(arr, 5, 6), header=124,
                                                  masks=[0xF800, 0x7E0, 0x1F, 0])))
    f.append(("bmp_rgb16_1555_alpha.bmp", mf.bmp_file(w, h, 16, 3, mf.bmp_rows16(arr, 5, 5), header=108,
                                                      masks=[0x7C00, 0x3E0, 0x1F, 0x8000])))
    p8 = small.quantize(50)
    idx = np.asarray(p8)
    pal = np.asarray(p8.getpalette()[:150]).reshape(-1, 3)
    rows8 = b"".join(r.tobytes() + bytes(-w % 4) for r in idx[::-1])
    f.append(("bmp_p8_colors50.bmp", mf.bmp_file(w, h, 8, 0, rows8, mf.bgrx(pal), colors=50)))
    f.append(("bmp_p8_colors0_full.bmp", mf.bmp_file(w, h, 8, 0, rows8, mf.bgrx(np.vstack([pal, np.zeros((206, 3), int)])))))
    f.append(("bmp_rle8_photo.bmp", mf.bmp_file(w, h, 8, 1, mf.rle_bytes(idx[::-1]), mf.bgrx(pal), colors=50)))
    f.append(("bmp_png_compressed.bmp", mf.bmp_file(w, h, 24, 5, saved(small, "PNG"))))
    f.append(("bmp_jpeg_compressed.bmp", mf.bmp_file(w, h, 24, 4, mf.jpeg_bytes(small))))
    return f


def tiff_battery(srcs):
    import tifffile

    def tif(**kw):
        b = io.BytesIO()
        tifffile.imwrite(b, **kw)
        return b.getvalue()

    f = []
    small = pick(srcs, 2, (61, 45))
    a = np.asarray(small)
    g = np.asarray(small.convert("L"))
    for comp in ("tiff_lzw", "tiff_adobe_deflate", "packbits", "raw"):
        f.append((f"tif_pil_rgb_{comp}.tif", saved(small, "TIFF", compression=comp)))
        f.append((f"tif_pil_l_{comp}.tif", saved(small.convert("L"), "TIFF", compression=comp)))
    for comp in ("lzw", "zlib"):
        for pred in (True, False):
            f.append((f"tif_tf_rgb_{comp}_pred{int(pred)}.tif", tif(data=a, photometric="rgb", compression=comp,
                                                                   predictor=pred)))
            f.append((f"tif_tf_l16_{comp}_pred{int(pred)}.tif", tif(data=g.astype(np.uint16) * 3, photometric="minisblack",
                                                                   compression=comp, predictor=pred)))
    f.append(("tif_tf_rgb_tiled.tif", tif(data=np.asarray(pick(srcs, 3, (100, 70))), photometric="rgb", tile=(32, 32))))
    f.append(("tif_tf_rgb_tiled_lzw.tif", tif(data=np.asarray(pick(srcs, 3, (100, 70))), photometric="rgb",
                                              tile=(16, 48), compression="lzw")))
    f.append(("tif_tf_l_tiled.tif", tif(data=g, photometric="minisblack", tile=(16, 16))))
    # tiles past the image's edges, compressed: LZW (with and without predictor), Deflate, PackBits
    big = np.asarray(pick(srcs, 3, (100, 70)))
    for comp in ("lzw", "zlib", "packbits"):
        for tile in ((16, 16), (32, 48), (48, 16)):
            name = f"tif_tf_tiled_{comp}_{tile[0]}x{tile[1]}"
            f.append((f"{name}_rgb.tif", tif(data=big, photometric="rgb", tile=tile, compression=comp)))
            f.append((f"{name}_l16_pred.tif", tif(data=g.astype(np.uint16) * 3, photometric="minisblack", tile=tile,
                                                  compression=comp, predictor=comp != "packbits")))
    f.append(("tif_tf_rgb_rowsperstrip3.tif", tif(data=a, photometric="rgb", rowsperstrip=3)))
    f.append(("tif_tf_rgb_be.tif", tif(data=a, photometric="rgb", byteorder=">")))
    f.append(("tif_tf_float32_grey.tif", tif(data=g.astype(np.float32) / 255, photometric="minisblack")))
    f.append(("tif_tf_int32_grey.tif", tif(data=g.astype(np.int32) * 2, photometric="minisblack")))
    f.append(("tif_tf_uint32_grey.tif", tif(data=g.astype(np.uint32) * 2, photometric="minisblack")))
    f.append(("tif_tf_la8.tif", tif(data=np.dstack([g, 255 - g]), photometric="minisblack", extrasamples=["unassalpha"])))
    f.append(("tif_tf_rgba_assoc.tif", tif(data=np.dstack([a, g]), photometric="rgb", extrasamples=["assocalpha"])))
    f.append(("tif_tf_rgbx_unspec.tif", tif(data=np.dstack([a, g]), photometric="rgb", extrasamples=["unspecified"])))
    f.append(("tif_tf_rgb_bigtiff.tif", tif(data=a, photometric="rgb", bigtiff=True)))
    multi = io.BytesIO()
    pick(srcs, 0, (50, 40)).save(multi, "TIFF", save_all=True, append_images=[pick(srcs, 1, (30, 60))])
    f.append(("tif_multipage.tif", multi.getvalue()))
    f.append(("tif_pil_rgb_jpeg.tif", saved(small, "TIFF", compression="jpeg")))
    f.append(("tif_pil_1bit_g3.tif", saved(small.convert("1"), "TIFF", compression="group3")))
    f.append(("tif_pil_ycbcr_jpeg.tif", saved(small.convert("YCbCr"), "TIFF", compression="jpeg")
              if False else saved(small, "TIFF", compression="jpeg", quality=50)))
    f.append(("tif_pil_cmyk_lzw.tif", saved(small.convert("CMYK"), "TIFF", compression="tiff_lzw")))
    # JPEG compression: YCbCr (libjpeg converts to RGB) with each subsampling, RGB, grey and
    # CMYK (as stored), strips, tiles, odd sizes, JPEGTables; Pillow's and tifffile's files
    for size in ((61, 45), (64, 48), (100, 70)):
        arr = np.asarray(pick(srcs, 4, size))
        grey = np.asarray(pick(srcs, 4, size).convert("L"))
        tag = f"{size[0]}x{size[1]}"
        for sub in ((2, 2), (2, 1), (1, 1)):
            for layout, kw in (("", {}), ("_rps8", {"rowsperstrip": 8}), ("_tile32", {"tile": (32, 32)})):
                f.append((f"tif_jpeg_ycc{sub[0]}{sub[1]}_{tag}{layout}.tif",
                          tif(data=arr, photometric="ycbcr", compression="jpeg", subsampling=sub, **kw)))
        f.append((f"tif_jpeg_rgb_{tag}.tif", tif(data=arr, photometric="rgb", compression="jpeg")))
        f.append((f"tif_jpeg_rgb_{tag}_tile16.tif", tif(data=arr, photometric="rgb", compression="jpeg", tile=(16, 16))))
        f.append((f"tif_jpeg_grey_{tag}_rps5.tif", tif(data=grey, photometric="minisblack", compression="jpeg",
                                                      rowsperstrip=5)))
        f.append((f"tif_jpeg_pil_rgb_q85_{tag}.tif", saved(pick(srcs, 4, size), "TIFF", compression="jpeg", quality=85)))
        f.append((f"tif_jpeg_pil_cmyk_{tag}.tif", saved(pick(srcs, 4, size).convert("CMYK"), "TIFF", compression="jpeg")))
        f.append((f"tif_jpeg_pil_l_{tag}.tif", saved(pick(srcs, 4, size).convert("L"), "TIFF", compression="jpeg")))
    # a strip whose JPEG data is cut short (libtiff's source ends it with a fake EOI, a warning)
    f.append(("tif_jpeg_strip_cut.tif", mf.shorten_strip(tif(data=np.asarray(pick(srcs, 5, (64, 48))),
                                                             photometric="ycbcr", compression="jpeg", rowsperstrip=16),
                                                         1, 200)))
    # 1-bit white-is-zero (Pillow's "1;I"), each compression: Pillow writes black-is-zero, so
    # the PhotometricInterpretation value is patched
    bilevel = pick(srcs, 6, (61, 45)).convert("1")
    for comp in ("raw", "tiff_lzw", "packbits", "tiff_adobe_deflate"):
        f.append((f"tif_1bit_miniswhite_{comp}.tif",
                  mf.set_tag(saved(bilevel, "TIFF", compression=comp), "PhotometricInterpretation", 0)))
    # float, signed and 16-bit white-is-zero grey: Pillow's F -> L; for compressed big-endian
    # files Pillow reads libtiff's native-order samples byte-swapped (F;32BF, I;16BS, I;32BS)
    fl = (g.astype(np.float32) * 1.37 - 40.3).astype(np.float32)
    fl[0, :6] = [np.nan, np.inf, -np.inf, -0.0, 254.99998, 255.0]
    for order, bo in (("le", "<"), ("be", ">")):
        for comp in (None, "lzw", "zlib"):
            kw = {"compression": comp} if comp else {}
            tag = f"{order}_{comp or 'raw'}"
            f.append((f"tif_float_grey_{tag}.tif", tif(data=fl, photometric="minisblack", byteorder=bo, **kw)))
            f.append((f"tif_float_white_{tag}.tif", tif(data=fl, photometric="miniswhite", byteorder=bo, **kw)))
            f.append((f"tif_int16_grey_{tag}.tif", tif(data=(g.astype(np.int16) * 2 - 100), photometric="minisblack",
                                                       byteorder=bo, **kw)))
            f.append((f"tif_int32_grey_{tag}.tif", tif(data=(g.astype(np.int32) * 3 - 200), photometric="minisblack",
                                                       byteorder=bo, **kw)))
            f.append((f"tif_uint32_grey_{tag}.tif", tif(data=g.astype(np.uint32) * 2, photometric="minisblack",
                                                        byteorder=bo, **kw)))
            f.append((f"tif_white16_{tag}.tif", tif(data=g.astype(np.uint16) * 3, photometric="miniswhite",
                                                    byteorder=bo, **kw)))
    # separate planes: 8- and 16-bit, strips and tiles (Pillow: uncompressed RGB, RGBA, CMYK;
    # any compressed)
    rgba_a = np.dstack([a, g])
    cmyk_a = np.asarray(small.convert("CMYK"))
    a16 = a.astype(np.uint16) * 256 + (255 - a.astype(np.uint16))
    g16 = g.astype(np.uint16) * 211
    for comp in (None, "lzw", "zlib", "packbits"):
        kw = {"compression": comp} if comp else {}
        t = comp or "raw"
        planes = lambda x: np.moveaxis(x, 2, 0).copy()  # noqa: E731
        f.append((f"tif_planar_rgb_{t}.tif", tif(data=planes(a), photometric="rgb", planarconfig="separate", **kw)))
        f.append((f"tif_planar_rgb_{t}_rps7.tif", tif(data=planes(a), photometric="rgb", planarconfig="separate",
                                                      rowsperstrip=7, **kw)))
        f.append((f"tif_planar_rgba_{t}.tif", tif(data=planes(rgba_a), photometric="rgb", planarconfig="separate",
                                                  extrasamples=["unassalpha"], **kw)))
        f.append((f"tif_planar_rgbx_{t}.tif", tif(data=planes(rgba_a), photometric="rgb", planarconfig="separate",
                                                  extrasamples=["unspecified"], **kw)))
        f.append((f"tif_planar_cmyk_{t}.tif", tif(data=planes(cmyk_a), photometric="separated",
                                                  planarconfig="separate", **kw)))
        f.append((f"tif_planar_la_{t}.tif", tif(data=np.stack([g, 255 - g]), photometric="minisblack",
                                                planarconfig="separate", extrasamples=["unassalpha"], **kw)))
        # 16-bit: low and high bytes differ (uncompressed, Pillow reads the bytes as stored)
        for order, bo in (("le", "<"), ("be", ">")):
            f.append((f"tif_planar16_rgb_{t}_{order}.tif", tif(data=planes(a16), photometric="rgb",
                                                               planarconfig="separate", byteorder=bo, **kw)))
        f.append((f"tif_planar16_rgb_{t}_rps5.tif", tif(data=planes(a16), photometric="rgb", planarconfig="separate",
                                                        rowsperstrip=5, **kw)))
        f.append((f"tif_planar16_rgba_{t}.tif", tif(data=planes(np.dstack([a16, g16])), photometric="rgb",
                                                    planarconfig="separate", extrasamples=["unassalpha"], **kw)))
        f.append((f"tif_planar16_rgbx_{t}.tif", tif(data=planes(np.dstack([a16, g16])), photometric="rgb",
                                                    planarconfig="separate", extrasamples=["unspecified"], **kw)))
        f.append((f"tif_planar16_cmyk_{t}.tif", tif(data=planes(cmyk_a.astype(np.uint16) * 251 + 7),
                                                    photometric="separated", planarconfig="separate", **kw)))
        f.append((f"tif_planar_tiled_rgb_{t}.tif", tif(data=planes(a), photometric="rgb", planarconfig="separate",
                                                       tile=(16, 16), **kw)))
        f.append((f"tif_planar_tiled_rgba_{t}.tif", tif(data=planes(rgba_a), photometric="rgb",
                                                        planarconfig="separate", extrasamples=["unassalpha"],
                                                        tile=(16, 32), **kw)))
        # RGBA planes without an ExtraSamples tag (libtiff calls the 4th sample unspecified, and
        # Pillow then un-premultiplies compressed planes), and premultiplied 16-bit planes
        for bits, data in (("", rgba_a), ("16", np.dstack([a16, g16]))):
            f.append((f"tif_planar{bits}_noextra_rgba_{t}.tif",
                      mf.hide_tag(tif(data=planes(data), photometric="rgb", planarconfig="separate",
                                      extrasamples=["unspecified"], **kw), "ExtraSamples")))
            f.append((f"tif_planar{bits}_tiled_noextra_rgba_{t}.tif",
                      mf.hide_tag(tif(data=planes(data), photometric="rgb", planarconfig="separate",
                                      extrasamples=["unspecified"], tile=(16, 16), **kw), "ExtraSamples")))
            f.append((f"tif_planar{bits}_assoc_rgba_{t}.tif", tif(data=planes(data), photometric="rgb",
                                                                  planarconfig="separate",
                                                                  extrasamples=["assocalpha"], **kw)))
        f.append((f"tif_noextra_rgba_{t}.tif", mf.hide_tag(tif(data=rgba_a, photometric="rgb",
                                                               extrasamples=["unspecified"], **kw),
                                                           "ExtraSamples")))
        f.append((f"tif_planar_tiled_rgbx_{t}.tif", tif(data=planes(rgba_a), photometric="rgb",
                                                        planarconfig="separate", extrasamples=["unspecified"],
                                                        tile=(16, 16), **kw)))
        f.append((f"tif_planar_tiled_la_{t}.tif", tif(data=np.stack([g, 255 - g]), photometric="minisblack",
                                                      planarconfig="separate", extrasamples=["unassalpha"],
                                                      tile=(16, 16), **kw)))
        f.append((f"tif_planar_tiled_cmyk_{t}.tif", tif(data=planes(cmyk_a), photometric="separated",
                                                        planarconfig="separate", tile=(32, 16), **kw)))
        for order, bo in (("le", "<"), ("be", ">")):
            f.append((f"tif_planar16_tiled_rgb_{t}_{order}.tif", tif(data=planes(a16), photometric="rgb",
                                                                     planarconfig="separate", tile=(16, 16),
                                                                     byteorder=bo, **kw)))
    for order, bo in (("le", "<"), ("be", ">")):
        f.append((f"tif_planar16_rgb_lzw_predictor_{order}.tif", tif(data=np.moveaxis(a16, 2, 0).copy(), photometric="rgb",
                                                                     planarconfig="separate", compression="lzw",
                                                                     predictor=2, byteorder=bo, rowsperstrip=9)))
    # compressed YCbCr (libtiff's TIFFRGBAImage for Pillow): every subsampling libtiff converts,
    # strips of rows not a multiple of the block height, tiles, odd sizes, other tags
    ycc_src = np.asarray(pick(srcs, 5, (61, 43)))
    for hs, vs in ((1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (4, 4)):
        for comp in ("lzw", "zlib", "packbits"):
            f.append((f"tif_ycbcr{hs}{vs}_{comp}_rps5.tif", mf.tiff_ycbcr(ycc_src, (hs, vs), comp, rps=5, seed=hs * vs)))
        f.append((f"tif_ycbcr{hs}{vs}_lzw_tiles.tif", mf.tiff_ycbcr(ycc_src, (hs, vs), "lzw", tile=(16, 16))))
        f.append((f"tif_ycbcr{hs}{vs}_zlib_onestrip_odd.tif", mf.tiff_ycbcr(ycc_src[:37, :29], (hs, vs), "zlib")))
        f.append((f"tif_ycbcr{hs}{vs}_zlib_rps8_w1.tif", mf.tiff_ycbcr(ycc_src[:, :1], (hs, vs), "zlib", rps=8)))
    f.append(("tif_ycbcr22_refbw_coeffs_lzw.tif",
              mf.tiff_ycbcr(ycc_src, (2, 2), "lzw", rps=8, refbw=[(16, 1), (235, 1), (128, 1), (240, 1), (128, 1), (240, 1)],
                            coefficients=[(2126, 10000), (7152, 10000), (722, 10000)])))
    f.append(("tif_ycbcr41_refbw_odd_lzw.tif",
              mf.tiff_ycbcr(ycc_src, (4, 1), "lzw", rps=3, refbw=[(3, 2), (500, 2), (1, 3), (254, 1), (250, 1), (7, 1)],
                            coefficients=[(1, 3), (1, 3), (1, 3)])))
    for wd in (9, 11, 13, 3):
        f.append((f"tif_ycbcr44_lzw_w{wd}_rps5.tif", mf.tiff_ycbcr(ycc_src[:, :wd], (4, 4), "lzw", rps=5)))
        f.append((f"tif_ycbcr42_lzw_w{wd}_rps5.tif", mf.tiff_ycbcr(ycc_src[:, :wd], (4, 2), "lzw", rps=5)))
    f.append(("tif_ycbcr44_lzw_h3.tif", mf.tiff_ycbcr(ycc_src[:3], (4, 4), "lzw")))
    f.append(("tif_ycbcr_notag_lzw.tif", mf.tiff_ycbcr(ycc_src, (2, 2), "lzw", rps=6, sub_tag=False)))
    f.append(("tif_float_grey_predictor3.tif", tif(data=fl, photometric="minisblack", compression="zlib",
                                                   predictor=3)))
    ycc_arr = np.asarray(pick(srcs, 4, (64, 48)).convert("YCbCr"))
    f.append(("tif_tf_ycbcr_uncompressed.tif", tif(data=ycc_arr, photometric="ycbcr", subsampling=(1, 1))))
    f.append(("tif_pil_ycbcr_uncompressed.tif", saved(pick(srcs, 4, (61, 45)).convert("YCbCr"), "TIFF")))
    f.append(("tif_tf_ycbcr_lzw.tif", tif(data=ycc_arr, photometric="ycbcr", subsampling=(1, 1), compression="lzw")))
    f.append(("tif_pil_p_lzw.tif", saved(small.quantize(77), "TIFF", compression="tiff_lzw")))
    f.append(("tif_pil_rgb_truncated.tif", saved(small, "TIFF")[:-300]))
    for o in (1, 3, 6, 8):
        f.append((f"tif_pil_orient{o}_lzw.tif", saved(pick(srcs, o, (23, 11)), "TIFF", compression="tiff_lzw",
                                                       tiffinfo={274: o})))
    return f


def riff(chunks, vp8x=None):
    body = b"WEBP" + b"".join(c for c in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(fourcc, data):
    return fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def webp_payload(data, fourcc):
    i = data.index(fourcc)
    n = struct.unpack("<I", data[i + 4:i + 8])[0]
    return data[i + 8:i + 8 + n]


def gif_battery(srcs):
    """GIF content (Pillow opens it whatever the name): Pillow's encoder, and files by hand for
    what encoders do not write (frames past the screen, grey-ramp palettes, indices past the
    palette, data after the end code, short streams, junk between blocks)."""
    f = []
    photo = pick(srcs, 1, (61, 43))
    f.append(("gif_named.jpg", saved(photo, "GIF")))
    for colours in (2, 16, 256):
        f.append((f"gif_pil_q{colours}.gif", saved(photo.quantize(colours), "GIF")))
    f.append(("gif_pil_l.gif", saved(photo.convert("L"), "GIF")))
    f.append(("gif_pil_1.gif", saved(photo.convert("1"), "GIF")))
    f.append(("gif_pil_interlace0.gif", saved(photo.quantize(64), "GIF", interlace=False)))
    f.append(("gif_pil_transparency.gif", saved(photo.quantize(64), "GIF", transparency=5)))
    big = pick(srcs, 2, (500, 375)).quantize(256)
    f.append(("gif_pil_big.gif", saved(big, "GIF")))
    frames = [pick(srcs, k, (61, 43)).quantize(32) for k in range(3)]
    f.append(("gif_pil_animated.gif", saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)))
    f.append(("gif_pil_animated_disposal2.gif", saved(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                                      disposal=2, transparency=0)))

    rng = np.random.default_rng(7)
    pal4 = [(10, 20, 30), (200, 100, 50), (0, 255, 0), (255, 255, 255)]
    pal256 = [(i, 255 - i, (i * 7) % 256) for i in range(256)]
    ramp = [(i, i, i) for i in range(256)]
    idx4 = rng.integers(0, 4, (23, 31)).astype(np.uint8)
    photo_idx = np.asarray(pick(srcs, 0, (80, 60)).quantize(256))
    noise = rng.integers(0, 256, (300, 400)).astype(np.uint8)
    G = mf.gif_file

    def add(name, screen, frames, **kw):
        f.append((f"gif_hand_{name}.gif", G(screen, frames, **kw)))

    add("basic", (31, 23), [dict(idx=idx4, min_size=2)], global_palette=pal4)
    add("87a", (31, 23), [dict(idx=idx4, min_size=2)], global_palette=pal4, version=b"GIF87a")
    add("min_size8", (31, 23), [dict(idx=idx4)], global_palette=pal4)
    add("local_palette", (31, 23), [dict(idx=idx4, min_size=2, palette=pal4[::-1])], global_palette=pal4)
    add("local_only", (31, 23), [dict(idx=idx4, min_size=2, palette=pal4)])
    add("no_palette", (31, 23), [dict(idx=idx4 * 60, min_size=8)])
    add("global_ramp", (80, 60), [dict(idx=photo_idx)], global_palette=ramp)
    add("local_ramp_global_colour", (80, 60), [dict(idx=photo_idx, palette=ramp)], global_palette=pal256)
    add("local_ramp_no_global", (80, 60), [dict(idx=photo_idx, palette=ramp)])
    add("short_ramp", (31, 23), [dict(idx=idx4 * 3, min_size=4)], global_palette=ramp[:16])
    add("index_past_palette", (31, 23), [dict(idx=idx4 * 3 + 1, min_size=4)], global_palette=pal4)
    add("frame_inside", (50, 40), [dict(idx=idx4, min_size=2, at=(7, 5))], global_palette=pal4)
    add("frame_inside_transparency", (50, 40), [dict(idx=idx4, min_size=2, at=(7, 5), transparency=2)],
        global_palette=pal4)
    add("frame_past_screen", (20, 10), [dict(idx=idx4, min_size=2, at=(5, 3))], global_palette=pal4)
    add("screen_zero", (0, 0), [dict(idx=idx4, min_size=2)], global_palette=pal4)
    add("transparency_index3", (31, 23), [dict(idx=idx4, min_size=2, transparency=3)], global_palette=pal4)
    add("interlace", (80, 60), [dict(idx=photo_idx, interlace=True)], global_palette=pal256)
    for h in (1, 2, 3, 5, 9):
        add(f"interlace_h{h}", (31, h), [dict(idx=idx4[:h], min_size=2, interlace=True)], global_palette=pal4)
    add("clear_every7", (80, 60), [dict(idx=photo_idx, lzw=dict(clear_every=7))], global_palette=pal256)
    add("table_full_no_clear", (400, 300), [dict(idx=noise, lzw=dict(clear_when_full=False))], global_palette=pal256)
    add("table_full_clear", (400, 300), [dict(idx=noise)], global_palette=pal256)
    add("blocks_of_1", (31, 23), [dict(idx=idx4, min_size=2, lzw=dict(block=1))], global_palette=pal4)
    add("no_end_code", (31, 23), [dict(idx=idx4, min_size=2, lzw=dict(end=False))], global_palette=pal4)
    add("no_trailer", (31, 23), [dict(idx=idx4, min_size=2)], global_palette=pal4, trailer=False)
    add("end_code_early_small", (31, 23), [dict(idx=idx4, min_size=2, lzw=dict(eoi_after=20))], global_palette=pal4)
    add("end_code_early_big", (400, 300), [dict(idx=noise, lzw=dict(eoi_after=20))], global_palette=pal256)
    add("end_code_early_second_frame", (31, 23), [dict(idx=idx4, min_size=2, lzw=dict(eoi_after=20)),
                                                  dict(idx=idx4, min_size=2)], global_palette=pal4)
    add("short_stream", (31, 23), [dict(idx=idx4[:10], min_size=2, size=(31, 23))], global_palette=pal4)
    add("long_stream", (31, 23), [dict(idx=np.vstack([idx4, idx4]), min_size=2, size=(31, 23))],
        global_palette=pal4)
    add("cut", (31, 23), [dict(idx=idx4, min_size=2, lzw=dict(cut=40))], global_palette=pal4, trailer=False)
    add("cut_big", (400, 300), [dict(idx=noise, lzw=dict(cut=70000))], global_palette=pal256, trailer=False)
    add("min_size_13", (31, 23), [dict(idx=idx4, min_size=2, data=b"\x0d\x02\x00\x00\x00")], global_palette=pal4)
    add("min_size_12", (31, 23), [dict(idx=idx4, min_size=2, data=b"\x0c\x04\x00\x10\x00\x00\x00")],
        global_palette=pal4)
    add("first_code_broken", (31, 23), [dict(idx=idx4, min_size=2, data=b"\x02\x01\x3c\x00")], global_palette=pal4)
    add("empty_frame", (31, 23), [dict(idx=idx4, min_size=2, size=(0, 23))], global_palette=pal4)
    ext = (b"\x21\xfe\x05hello\x03abc\x00"  # comment
           b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop
           b"\x21\x01\x0c" + bytes(12) + b"\x00"  # plain text
           b"\x21\x99\x02ab\x00")  # unknown label
    add("extensions", (31, 23), [dict(idx=idx4, min_size=2, before=ext)], global_palette=pal4)
    add("junk_between_blocks", (31, 23), [dict(idx=idx4, min_size=2, before=b"xyz\x00\x05")], global_palette=pal4)
    add("gce_short", (31, 23), [dict(idx=idx4, min_size=2, before=b"\x21\xf9\x02\x00\x00\x00")],
        global_palette=pal4)
    add("gce_3_bytes_transparent", (31, 23), [dict(idx=idx4, min_size=2, before=b"\x21\xf9\x03\x01\x00\x00\x00")],
        global_palette=pal4)
    add("gce_3_bytes", (31, 23), [dict(idx=idx4, min_size=2, before=b"\x21\xf9\x03\x00\x00\x00\x00")],
        global_palette=pal4)
    add("two_gces", (31, 23), [dict(idx=idx4, min_size=2, transparency=1,
                                    before=b"\x21\xf9\x04\x01\x00\x00\x03\x00")], global_palette=pal4)
    good = G((31, 23), [dict(idx=idx4, min_size=2)], global_palette=pal4)
    f.append(("gif_hand_header_only.gif", good[:13]))
    f.append(("gif_hand_no_image.gif", good[:13 + 12] + b";"))
    f.append(("gif_hand_truncated_descriptor.gif", good[:13 + 12 + 5]))
    for k, cut in enumerate((40, 60, 80, 100, len(good) - 2, len(good) - 1)):
        f.append((f"gif_hand_truncated_{k}.gif", good[:cut]))
    return f


def ico_battery(srcs):
    """ICO content (Pillow opens it whatever the name): which icon Pillow picks, PNG and
    headerless-BMP icons of every depth, the AND mask Pillow insists on reading."""
    f = []
    photo = pick(srcs, 1, (64, 64))
    f.append(("ico_pil_png.ico", saved(photo, "ICO", sizes=[(16, 16), (32, 32), (64, 64)])))
    f.append(("ico_pil_png_rgba.jpg", saved(photo.convert("RGBA"), "ICO", sizes=[(48, 48)])))
    f.append(("ico_pil_bmp.ico", saved(photo, "ICO", sizes=[(32, 32), (64, 64)], bitmap_format="bmp")))
    f.append(("ico_pil_bmp_rgba.ico", saved(photo.convert("RGBA"), "ICO", sizes=[(40, 24)], bitmap_format="bmp")))
    small = pick(srcs, 2, (27, 19))
    q16, q256 = small.quantize(16), small.quantize(200)
    pal16 = [tuple(q16.getpalette()[3 * i:3 * i + 3]) for i in range(16)]
    pal256 = [tuple(q256.getpalette()[3 * i:3 * i + 3]) for i in range(200)]
    idx16, idx256 = np.asarray(q16), np.asarray(q256)
    bw = (np.asarray(small.convert("L")) > 128).astype(np.uint8)
    rgb = np.asarray(small)
    rgba = np.dstack([rgb, np.asarray(small.convert("L"))])
    d4, d8 = mf.ico_dib(idx16, 4, pal16), mf.ico_dib(idx256, 8, pal256)
    d1 = mf.ico_dib(bw, 1, [(10, 20, 30), (240, 230, 220)])
    d24, d32 = mf.ico_dib(rgb, 24), mf.ico_dib(rgba, 32)
    f.append(("ico_bmp4.ico", mf.ico_file([(27, 19, 16, 4, d4)])))
    f.append(("ico_bmp8.ico", mf.ico_file([(27, 19, 0, 8, d8)])))
    f.append(("ico_bmp1.ico", mf.ico_file([(27, 19, 2, 1, d1)])))
    f.append(("ico_bmp1_grey_palette.ico", mf.ico_file([(27, 19, 2, 1, mf.ico_dib(bw, 1, [(0, 0, 0), (255, 255, 255)]))])))
    f.append(("ico_bmp24.ico", mf.ico_file([(27, 19, 0, 24, d24)])))
    f.append(("ico_bmp32.ico", mf.ico_file([(27, 19, 0, 32, d32)])))
    f.append(("ico_bmp32_top_down.ico", mf.ico_file([(27, 19, 0, 32, mf.ico_dib(rgba, 32, top_down=True))])))
    f.append(("ico_bmp24_bpp0_in_directory.ico", mf.ico_file([(27, 19, 0, 0, d24)])))
    # the same size at several depths: Pillow takes the lowest depth of the largest
    f.append(("ico_pick_depths.ico", mf.ico_file([(27, 19, 0, 32, d32), (27, 19, 0, 24, d24), (27, 19, 16, 4, d4)])))
    f.append(("ico_pick_largest.ico", mf.ico_file([(16, 16, 0, 24, mf.ico_dib(rgb[:16, :16], 24)), (27, 19, 0, 8, d8)])))
    f.append(("ico_pick_colours_byte.ico", mf.ico_file([(27, 19, 16, 0, d4), (27, 19, 0, 0, d8)])))
    f.append(("ico_directory_size_wrong.ico", mf.ico_file([(27, 19, 0, 24, d24, 10)])))
    f.append(("ico_directory_size_big.ico", mf.ico_file([(27, 19, 0, 24, d24, len(d24) + 500)])))
    f.append(("ico_bmp32_truncated.ico", mf.ico_file([(27, 19, 0, 32, d32[:-30])])))
    f.append(("ico_bmp8_truncated.ico", mf.ico_file([(27, 19, 0, 8, d8[:-200])])))
    f.append(("ico_png_in_bmp_dims.ico", mf.ico_file([(99, 99, 0, 32, saved(small, "PNG"))])))
    f.append(("ico_empty.ico", struct.pack("<HHH", 0, 1, 0)))
    f.append(("ico_truncated_directory.ico", mf.ico_file([(27, 19, 0, 24, d24)])[:15]))
    return f


def webp_battery(srcs):
    f = []
    for k, q in enumerate((0, 10, 30, 50, 75, 90, 100)):
        size = (111 + 7 * k, 77 + 5 * k)
        im = pick(srcs, k, size)
        f.append((f"webp_lossy_q{q}_{size[0]}x{size[1]}.webp", saved(im, "WEBP", quality=q, method=k % 7)))
        rgba = Image.merge("RGBA", (*im.split(), pick(srcs, k + 1, size).convert("L")))
        f.append((f"webp_lossy_alpha_q{q}_{size[0]}x{size[1]}.webp", saved(rgba, "WEBP", quality=q,
                                                                          alpha_quality=q)))
    for k, (w, h) in enumerate(((1, 1), (3, 5), (17, 1), (1, 17), (333, 7), (16, 16), (249, 251))):
        im = pick(srcs, k, (w, h))
        f.append((f"webp_lossy_{w}x{h}.webp", saved(im, "WEBP", quality=80)))
        f.append((f"webp_lossless_{w}x{h}.webp", saved(im, "WEBP", lossless=True)))
    rgba = Image.merge("RGBA", (*pick(srcs, 2, (90, 70)).split(), pick(srcs, 3, (90, 70)).convert("L")))
    f.append(("webp_lossless_alpha_exact.webp", saved(rgba, "WEBP", lossless=True, exact=True)))
    f.append(("webp_lossless_alpha.webp", saved(rgba, "WEBP", lossless=True)))
    f.append(("webp_lossy_grey.webp", saved(pick(srcs, 5, (90, 70)).convert("L"), "WEBP", quality=60)))
    frames = [pick(srcs, k, (80, 60)) for k in range(3)]
    f.append(("webp_anim_lossy.webp", saved(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=70,
                                            duration=100)))
    f.append(("webp_anim_lossless.webp", saved(frames[0], "WEBP", save_all=True, append_images=frames[1:],
                                               lossless=True, duration=100)))
    # an animation whose first frame covers part of the canvas, at an offset, with a background
    # colour (what is outside the first frame)
    vp8l = webp_payload(saved(pick(srcs, 1, (40, 30)), "WEBP", lossless=True), b"VP8L")
    vp8 = webp_payload(saved(pick(srcs, 1, (40, 30)), "WEBP", quality=80), b"VP8 ")
    for kind, fourcc, payload in (("vp8l", b"VP8L", vp8l), ("vp8", b"VP8 ", vp8)):
        cw, ch = 90, 70
        vp8x = chunk(b"VP8X", bytes([0x02 | 0x10, 0, 0, 0]) + (cw - 1).to_bytes(3, "little") + (ch - 1).to_bytes(3, "little"))
        anim = chunk(b"ANIM", bytes([10, 200, 30, 255]) + struct.pack("<H", 0))  # BGRA background, loop
        frame = (bytes([5, 0, 0]) + bytes([10, 0, 0])  # offset /2: x=10, y=20
                 + (40 - 1).to_bytes(3, "little") + (30 - 1).to_bytes(3, "little") + (100).to_bytes(3, "little")
                 + bytes([0x00]))
        anmf = chunk(b"ANMF", frame + chunk(fourcc, payload))
        f.append((f"webp_anim_offset_first_frame_{kind}.webp", riff([vp8x, anim, anmf])))
    # a lossy frame with an alpha channel (ALPH + VP8), blending flag set, at an odd place
    rgba = Image.merge("RGBA", (*pick(srcs, 3, (40, 30)).split(), pick(srcs, 4, (40, 30)).convert("L")))
    still = saved(rgba, "WEBP", quality=70)
    inner = chunk(b"ALPH", webp_payload(still, b"ALPH")) + chunk(b"VP8 ", webp_payload(still, b"VP8 "))
    vp8x = chunk(b"VP8X", bytes([0x02 | 0x10, 0, 0, 0]) + (63).to_bytes(3, "little") + (47).to_bytes(3, "little"))
    frame = bytes([12, 0, 0, 9, 0, 0]) + (39).to_bytes(3, "little") + (29).to_bytes(3, "little") + (50).to_bytes(3, "little") + b"\x00"
    f.append(("webp_anim_alpha_first_frame.webp", riff([vp8x, chunk(b"ANIM", bytes(6)), chunk(b"ANMF", frame + inner)])))
    f.append(("webp_truncated.webp", saved(pick(srcs, 0, (90, 70)), "WEBP", quality=80)[:-100]))
    return f


def transform_battery(srcs):
    """Aspect ratios and sizes for the resize + crop arithmetic (lossless PNG: the pixels are
    exact, only the transform is tested)."""
    f = []
    sizes = [(248, 248), (249, 248), (248, 249), (247, 247), (224, 224), (223, 500), (500, 223), (100, 100),
             (1, 1), (2, 3), (7, 500), (500, 7), (250, 251), (251, 250), (300, 200), (200, 300), (640, 480),
             (480, 640), (333, 500), (500, 333), (1000, 997), (997, 1000), (249, 250), (496, 248), (496, 249),
             (247, 248), (1024, 224), (225, 225), (226, 226), (271, 269), (512, 383), (383, 512), (37, 1919),
             (1919, 37), (3, 224), (224, 3), (2048, 1536), (1536, 2048), (257, 4), (4, 257)]
    for k, (w, h) in enumerate(sizes):
        f.append((f"xf_{w}x{h}.png", saved(pick(srcs, k, (w, h)), "PNG", compress_level=1)))
    return f


def battery():
    srcs = sources()
    f = []
    for fn in (jpeg_battery, png_battery, pnm_battery, bmp_battery, tiff_battery, gif_battery, ico_battery,
               webp_battery, transform_battery):
        try:
            part = fn(srcs)
        except Exception as e:  # a generator that cannot run here (missing tool) is reported
            print(f"{fn.__name__}: {type(e).__name__}: {e}")
            raise
        f += [(name, data) for name, data in part if data is not None]
    return f


# ---------------------------------------------------------------------------------------------
# the reference

def reference(path, do_transform=True):
    import torch
    from torchvision import transforms

    try:
        with Image.open(path) as im:
            rgb_im = im.convert("RGB")
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    rgb = np.asarray(rgb_im)
    r = {"width": rgb.shape[1], "height": rgb.shape[0], "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest()}
    w, h = rgb_im.size
    short, long = min(w, h), max(w, h)
    if do_transform and 248 * long // short * 248 <= MAX_RESIZED_PIXELS:
        t = transforms.Compose([transforms.Resize(248), transforms.CenterCrop(224), transforms.ToTensor(),
                                transforms.Normalize(MEAN, STD)])
        with torch.no_grad():
            x = t(rgb_im).contiguous().numpy().astype("<f4")
        r["xf_sha256"] = hashlib.sha256(x.tobytes()).hexdigest()
    return r


def refused_ok(name, err):
    for pat, text in REFUSED_OK.items():
        if fnmatch.fnmatch(name, pat) and text in err:
            return True
    return False


def details(paths, bins, out):
    """Re-run fp8q on `paths` writing raw outputs, and describe the differences."""
    dump = os.path.join(out, "dump")
    os.makedirs(dump, exist_ok=True)
    subprocess.run([bins, "--out", dump], input="\n".join(paths) + "\n", text=True, capture_output=True, check=True)
    import torch
    from torchvision import transforms

    res = {}
    for i, p in enumerate(paths):
        msg = []
        try:
            rgb_im = Image.open(p).convert("RGB")
        except Exception:
            continue
        want = np.asarray(rgb_im)
        fn = os.path.join(dump, f"{i}.rgb")
        if os.path.exists(fn):
            got = np.fromfile(fn, np.uint8)
            if got.size == want.size:
                d = np.abs(got.astype(int) - want.reshape(-1).astype(int))
                nz = np.nonzero(d)[0]
                if nz.size:
                    first = nz[0] // 3
                    msg.append(f"rgb: {nz.size} of {d.size} bytes differ, max {d.max()}, first at (x={first % want.shape[1]}, "
                               f"y={first // want.shape[1]})")
            else:
                msg.append(f"rgb: {got.size} bytes vs {want.size}")
            os.remove(fn)
        fn = os.path.join(dump, f"{i}.f32")
        if os.path.exists(fn):
            got = np.fromfile(fn, "<f4")
            t = transforms.Compose([transforms.Resize(248), transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize(MEAN, STD)])
            x = t(rgb_im).numpy().reshape(-1)
            d = np.abs(got - x)
            nz = np.nonzero(d)[0]
            if nz.size:
                msg.append(f"transform: {nz.size} of {d.size} values differ, max {d.max():.3g}, first at {np.unravel_index(nz[0], (3, 224, 224))}")
            os.remove(fn)
        res[p] = "; ".join(msg)
    return res


def mutate(files, n, imgs, seed):
    """`n` mutants of the battery's `files`, each with 1 to 4 bytes replaced or bit-flipped
    (seeded): damaged files on which fp8q must decode what Pillow decodes or refuse."""
    import random

    rng = random.Random(seed)
    out = []
    for k in range(n):
        name, data = files[rng.randrange(len(files))]
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256) if rng.random() < 0.7 else b[i] ^ (1 << rng.randrange(8))
        out.append((f"mut{k:05d}_{name}", bytes(b)))
    return out


def compare_mutants(paths, ours):
    """Tally fp8q against Pillow on damaged files. Pillow's libjpeg-turbo runs without SIMD
    (`JSIMD_FORCENONE=1`, as for the corrupt-data fixtures): on recovered garbage coefficients its
    SIMD and C IDCTs differ, and fp8q builds the C one. Returns the paths where fp8q decodes
    something Pillow does not give (other pixels, or Pillow refusing)."""
    tally = {"identical": 0, "both refuse": 0, "fp8q refuses, Pillow decodes": 0,
             "fp8q decodes, Pillow refuses": 0, "both decode, pixels differ": 0}
    bad = []
    for p in paths:
        try:
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB"))
            ref = hashlib.sha256(rgb.tobytes()).hexdigest()
        except Exception:
            ref = None
        got = ours[p].get("rgb_sha256")
        if ref is None and got is None:
            tally["both refuse"] += 1
        elif ref is None:
            tally["fp8q decodes, Pillow refuses"] += 1
            bad.append(p)
        elif got is None:
            tally["fp8q refuses, Pillow decodes"] += 1
        elif got == ref:
            tally["identical"] += 1
        else:
            tally["both decode, pixels differ"] += 1
            bad.append(p)
    return tally, bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mutate", type=int, default=0,
                    help="instead: this many damaged copies of the (--only) battery files, fp8q against Pillow")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="/tmp/img-audit")
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                  "release", "examples", "image_dump"))
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    imgs = os.path.join(args.out, "imgs")
    os.makedirs(imgs, exist_ok=True)
    for old in os.listdir(imgs):
        os.remove(os.path.join(imgs, old))
    files = [(n, d) for n, d in battery() if args.only in n]
    if args.mutate:
        os.environ["JSIMD_FORCENONE"] = "1"  # read by libjpeg-turbo at its first use, below
        files = mutate(files, args.mutate, imgs, args.seed)
    paths = []
    for name, data in files:
        p = os.path.join(imgs, name)
        with open(p, "wb") as fh:
            fh.write(data)
        paths.append(p)
    print(f"{len(paths)} files, {sum(len(d) for _, d in files) / 1e6:.1f} MB in {imgs}", flush=True)
    run = subprocess.run([args.bin], input="\n".join(paths) + "\n", text=True, capture_output=True)
    if run.returncode != 0:
        sys.exit(f"image_dump failed: {run.stderr[-2000:]}")
    ours = {json.loads(line)["path"]: json.loads(line) for line in run.stdout.splitlines()}
    if args.mutate:
        tally, bad = compare_mutants(paths, ours)
        for k, v in tally.items():
            print(f"{v:6d}  {k}")
        for p in bad[:20]:
            print("  ", os.path.basename(p), ours[p].get("error", "decoded"))
        sys.exit(1 if bad else 0)
    rows, bad = [], []
    for p in paths:
        name = os.path.basename(p)
        ref = reference(p)
        got = ours[p]
        if "error" in ref:
            if "error" in got:
                status = "both refuse"
            else:
                status = "MISMATCH: fp8q decodes, Pillow raises " + ref["error"]
        elif "error" in got:
            status = ("refused (on purpose): " if refused_ok(name, got["error"]) else "MISMATCH: fp8q refuses: ") + got["error"]
        elif (got["width"], got["height"]) != (ref["width"], ref["height"]):
            status = f"MISMATCH: size {got['width']}x{got['height']} vs {ref['width']}x{ref['height']}"
        elif got["rgb_sha256"] != ref["rgb_sha256"]:
            status = "MISMATCH: rgb"
            if any(fnmatch.fnmatch(name, pat) for pat in C_PATH_OK) and pillow_c_path_sha(p) == got["rgb_sha256"]:
                status = "identical to Pillow's C path (JSIMD_FORCENONE=1; corrupt data, SIMD differs)"
        elif "xf_sha256" in ref and (got.get("load_sha256") != ref["xf_sha256"] or got.get("apply_sha256") != ref["xf_sha256"]):
            status = ("MISMATCH: transform (load {} apply {})".format(got.get("load_sha256") == ref["xf_sha256"],
                                                                    got.get("apply_sha256") == ref["xf_sha256"]))
        else:
            status = "identical" + ("" if "xf_sha256" in ref else " (rgb; transform not compared)")
        if "error" in got and "load_error" in got and got["error"] != got["load_error"]:
            status += f" [load error differs: {got['load_error']}]"
        rows.append((name, status, ref.get("error", "")))
        if status.startswith("MISMATCH"):
            bad.append(p)
    det = details(bad, args.bin, args.out) if bad else {}
    width = max(len(r[0]) for r in rows)
    for name, status, perr in rows:
        extra = det.get(os.path.join(imgs, name), "")
        line = f"{name:<{width}}  {status}" + (f"  [{extra}]" if extra else "")
        if status == "both refuse":
            line += f"  (Pillow: {perr[:80]})"
        print(line)
    n_id = sum(r[1].startswith("identical") for r in rows)
    print(f"\n{len(rows)} files: {n_id} identical, {sum(r[1] == 'both refuse' for r in rows)} refused by both, "
          f"{sum(r[1].startswith('refused') for r in rows)} refused on purpose, {len(bad)} mismatches")
    with open(os.path.join(args.out, "report.json"), "w") as fh:
        json.dump({"rows": rows, "details": det}, fh, indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
