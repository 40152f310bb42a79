"""Make the image-decoding fixtures for crates/fp8q-images/tests/decode_pillow.rs.

Real photographs shipped with scikit-image (`skimage/data`: chelsea, coffee, astronaut, rocket,
camera, ...) are re-encoded with Pillow at small sizes in every variant our ImageFolder may meet:

* JPEG: baseline and progressive; 4:2:0, 4:2:2, 4:4:4, 4:4:0 (hand-assembled, Pillow cannot
  write it), 4:1:1 and arithmetic coding (written by libjpeg-turbo's `cjpeg` when it is
  installed, Debian package libjpeg-turbo-progs; skipped otherwise); grayscale; CMYK with and without the Adobe marker; RGB without colour transform;
  restart markers; odd and tiny sizes; qualities 10-100; an EXIF orientation and an ICC profile
  (both ignored by `Image.open`); a PNG under a `.JPEG` name; truncated and garbage files.
* PNG (8/16-bit, grey, grey+alpha, palette with and without tRNS, 1-bit, interlaced), BMP, PPM/PGM
  (binary, 16-bit, plain text), TIFF (raw, LZW, deflate, packbits, JPEG), WebP (lossy, lossless,
  with alpha).
* BMP that Pillow cannot write, built by hand (37x29 crops): 16-bit 5-5-5 and 5-6-5 (bitfields,
  V3/V4/OS2 headers, top-down), 32-bit bitfields, RLE8/RLE4 (with every command: deltas, runs
  past the row end, absolute runs into the next row, indices past the palette), grey-ramp and
  black-and-white palettes, truncated and early-ending files.
* TIFF beyond 8-bit grey/RGB: palette (8-bit from Pillow, 4-bit by hand), 1/2/4-bit grey, 16-bit
  grey and RGB (little- and big-endian, deflate with predictor; tifffile), CMYK 8/16-bit,
  white-is-zero, the Orientation tag 2-8, CCITT G4 (refused by fp8q).

For each file, `expected.json` holds what `Image.open(p).convert('RGB')` gives (the reference's
loader): width, height, the SHA-256 of the RGB bytes, per-channel sums and 64 evenly spaced
pixels (for diagnostics), or the error Pillow raises. For a few JPEGs it also holds torchvision's
validation transform (Resize(248), CenterCrop(224), ToTensor, Normalize) as the SHA-256 of its
float32 bytes plus a few values, and the logits of the narrow ResNet-50 fixture
(crates/fp8q-ptq/tests/data/resnet50_narrow.pth) on those tensors.

    python tools/make_image_fixtures.py crates/fp8q-images/tests/data/images
"""
import hashlib
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, ImageCms, features

SKIMAGE_DATA = os.path.join(os.path.dirname(__import__("skimage").__file__), "data")
N_SAMPLES = 64


def photo(name, size=None, mode="RGB"):
    im = Image.open(os.path.join(SKIMAGE_DATA, name)).convert(mode)
    if size is not None:
        im = im.resize(size, Image.LANCZOS)
    return im


def jpeg_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def strip_segment(data, marker):
    """Remove every marker segment `0xFF marker` before the first SOS."""
    out, i = bytearray(data[:2]), 2
    while i < len(data):
        m, n = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if m == 0xDA:
            out += data[i:]
            break
        if m != marker:
            out += data[i:i + 2 + n]
        i += 2 + n
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# A minimal baseline JPEG encoder for the one layout Pillow cannot write (4:4:0: luma sampled
# 1x2, chroma 1x1). Float DCT, standard Annex K tables; only the file's validity matters, the
# expected pixels come from Pillow decoding it.

ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
    20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
    59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63])
Q_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
          69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55,
          64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103,
          99]
Q_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99,
            99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
DC_LUMA = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
DC_CHROMA = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12)))
AC_LUMA = ([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D], bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25"
    "262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a83"
    "8485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3"
    "d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"))
AC_CHROMA = ([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77], bytes.fromhex(
    "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f117"
    "18191a262728292a35363738393a434445464748494a535455565758595a636465666768696a73747576777879"
    "7a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9"
    "cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"))


def huff_codes(bits, vals):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return codes


class BitWriter:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, code, length):
        self.acc, self.n = (self.acc << length) | code, self.n + length
        while self.n >= 8:
            byte = (self.acc >> (self.n - 8)) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)
            self.n -= 8

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)


def dct_matrix():
    c = np.array([[np.sqrt((1 if u == 0 else 2) / 8) * np.cos((2 * x + 1) * u * np.pi / 16)
                   for x in range(8)] for u in range(8)])
    return c


def encode_440(im, quality=85):
    """Baseline JPEG, YCbCr with luma 1x2 and chroma 1x1 (4:4:0), JFIF."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    ql = np.clip((np.array(Q_LUMA) * scale + 50) // 100, 1, 255).astype(int)
    qc = np.clip((np.array(Q_CHROMA) * scale + 50) // 100, 1, 255).astype(int)
    rgb = np.asarray(im.convert("RGB")).astype(np.float64)
    h, w = rgb.shape[:2]
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = -0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2] + 128
    cr = 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2] + 128
    mh, mw = -(-h // 16) * 16, -(-w // 8) * 8

    def pad(p, ph, pw):
        return np.pad(p, ((0, ph - p.shape[0]), (0, pw - p.shape[1])), mode="edge")

    y = pad(y, mh, mw)
    # chroma: average vertical pairs (1x2 -> 1x1)
    cbp, crp = pad(cb, mh, mw), pad(cr, mh, mw)
    cbs = (cbp[0::2] + cbp[1::2]) / 2
    crs = (crp[0::2] + crp[1::2]) / 2
    c = dct_matrix()
    tables = [(huff_codes(*DC_LUMA), huff_codes(*AC_LUMA)),
              (huff_codes(*DC_CHROMA), huff_codes(*AC_CHROMA))]
    bw, pred = BitWriter(), [0, 0, 0]

    def block(plane, by, bx, q, comp, t):
        b = plane[by:by + 8, bx:bx + 8] - 128
        coef = np.round((c @ b @ c.T).flatten()[ZIGZAG] / q[ZIGZAG]).astype(int)
        dc_t, ac_t = tables[t]
        diff = coef[0] - pred[comp]
        pred[comp] = coef[0]
        size = int(abs(diff)).bit_length()
        bw.put(*dc_t[size])
        if size:
            bw.put(diff if diff > 0 else diff + (1 << size) - 1, size)
        run = 0
        for k in range(1, 64):
            v = coef[k]
            if v == 0:
                run += 1
                continue
            while run > 15:
                bw.put(*ac_t[0xF0])
                run -= 16
            size = int(abs(v)).bit_length()
            bw.put(*ac_t[(run << 4) | size])
            bw.put(v if v > 0 else v + (1 << size) - 1, size)
            run = 0
        if run:
            bw.put(*ac_t[0x00])

    for my in range(0, mh, 16):
        for mx in range(0, mw, 8):
            block(y, my, mx, ql, 0, 0)
            block(y, my + 8, mx, ql, 0, 0)
            block(cbs, my // 2, mx, qc, 1, 1)
            block(crs, my // 2, mx, qc, 2, 1)
    bw.flush()

    def seg(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    def dht(cls, ident, spec):
        return bytes([(cls << 4) | ident]) + bytes(spec[0]) + bytes(spec[1])

    out = b"\xff\xd8" + seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += seg(0xDB, bytes([0]) + bytes(ql[ZIGZAG].tolist()) + bytes([1]) + bytes(qc[ZIGZAG].tolist()))
    out += seg(0xC0, struct.pack(">BHHB", 8, h, w, 3) + bytes([1, 0x12, 0, 2, 0x11, 1, 3, 0x11, 1]))
    out += seg(0xC4, dht(0, 0, DC_LUMA) + dht(1, 0, AC_LUMA) + dht(0, 1, DC_CHROMA) + dht(1, 1, AC_CHROMA))
    out += seg(0xDA, bytes([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]))
    return out + bytes(bw.out) + b"\xff\xd9"


# ---------------------------------------------------------------------------------------------
# Hand-written PNG and PNM for the variants Pillow cannot save (16-bit colour, Adam7, maxval).

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(arr, color_type, bit_depth, interlace=False, chunks=()):
    """`arr`: HxWxC unsigned array holding the samples; `chunks`: (type, data) before IDAT."""
    h, w = arr.shape[:2]
    dt = ">u2" if bit_depth == 16 else "u1"
    arr = arr.reshape(h, w, -1).astype(dt)

    def rows(a):
        if bit_depth < 8:  # pack samples MSB first
            bits = np.unpackbits(a.astype("u1")[..., None], axis=-1)[..., 8 - bit_depth:]
            return b"".join(b"\x00" + np.packbits(bits[r].reshape(-1)).tobytes() for r in range(a.shape[0]))
        return b"".join(b"\x00" + a[r].tobytes() for r in range(a.shape[0]))

    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                  (0, 1, 1, 2)]
        raw = b"".join(rows(arr[y0::dy, x0::dx]) for x0, y0, dx, dy in passes
                       if arr[y0::dy, x0::dx].size)
    else:
        raw = rows(arr)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    extra = b"".join(png_chunk(k, d) for k, d in chunks)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def pnm_bytes(arr, magic, maxval):
    h, w = arr.shape[:2]
    head = f"{magic}\n# fixture\n{w} {h}\n{maxval}\n".encode()
    if magic in ("P2", "P3"):
        vals = arr.reshape(h, -1)
        return head + b"\n".join(" ".join(str(int(v)) for v in row).encode() for row in vals) + b"\n"
    return head + arr.astype(">u2" if maxval > 255 else "u1").tobytes()


def insert_before_sos(data, junk):
    i = data.index(b"\xff\xda")
    return data[:i] + junk + data[i:]


def corrupt_scan(data, every=97):
    """Overwrite every `every`-th byte of the entropy-coded data (never with 0xFF)."""
    start = data.index(b"\xff\xda")
    start += 2 + struct.unpack(">H", data[start + 2:start + 4])[0]
    out = bytearray(data)
    for i in range(start + 50, len(data) - 50, every):
        if out[i] != 0xFF and out[i - 1] != 0xFF:
            out[i] = (out[i] * 7 + 13) % 255
    return bytes(out)


def cjpeg(im, *args):
    """libjpeg-turbo's `cjpeg` (Debian: libjpeg-turbo-progs) for what Pillow cannot write:
    arithmetic coding, 4:1:1. None when the tool is missing (those fixtures are then skipped)."""
    import shutil
    import subprocess

    if shutil.which("cjpeg") is None:
        print(f"cjpeg not found: skipping a fixture ({' '.join(args)})")
        return None
    ppm = saved(im, "PPM")
    return subprocess.run(["cjpeg", *args], input=ppm, capture_output=True, check=True).stdout


def bmp_file(w, h, bits, compression, pixels, palette=b"", header=40, masks=None, colors=0, top_down=False):
    """A BMP by hand (Pillow writes only 1/8/24/32-bit uncompressed ones): file header, info
    header of `header` bytes (12: OS/2 1.x; 40: with `masks` after it; 56/108: masks inside),
    palette (BGRX entries, BGR for the OS/2 header), pixel data."""
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        info = struct.pack("<IIIHHIIiiII", header, w, 2**32 - h if top_down else h, 1, bits, compression,
                           len(pixels), 2835, 2835, colors, 0)
        extra = struct.pack("<%dI" % len(masks), *masks) if masks else b""
        info += extra if header == 40 else (extra + bytes(header - 40))[:header - 40]
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def bmp_rows16(arr, r_bits, g_bits, stride_pad=True):
    """HxWx3 uint8 to 16-bit pixels (5-5-5 or 5-6-5), bottom row first, rows padded to 4 bytes."""
    a = arr.astype(np.uint32)
    v = ((a[..., 0] >> (8 - r_bits)) << (5 + g_bits)) | ((a[..., 1] >> (8 - g_bits)) << 5) | (a[..., 2] >> 3)
    rows = [v[y].astype("<u2").tobytes() for y in range(v.shape[0])][::-1]
    return b"".join(r + bytes(-len(r) % 4) for r in rows)


def rle_bytes(rows, rle4=False):
    """RLE8/RLE4 data for rows of palette indices (in stored order): a run for 3 or more equal
    pixels (RLE4: a repeating pair), an absolute run for the rest, end of line after each row,
    end of bitmap."""
    out = bytearray()
    for row in rows:
        row, i, n = [int(v) for v in row], 0, len(row)
        while i < n:
            j = i + 1
            while j < n and j - i < 255 and row[j] == row[i + (j - i) % 2 if rle4 else i]:
                j += 1
            if j - i >= 3 or n - i < 3:
                k = j - i
                out += bytes([k, (row[i] << 4 | (row[i + 1] if k > 1 else 0)) if rle4 else row[i]])
                i = j
                continue
            j = i + 3
            while j < n and j - i < 255 and not (j + 2 < n and row[j] == row[j + 1] == row[j + 2]):
                j += 1
            seg = row[i:j]
            if rle4:
                seg = seg + [0] * (len(seg) % 2)
                packed = bytes(seg[t] << 4 | seg[t + 1] for t in range(0, len(seg), 2))
            else:
                packed = bytes(seg)
            out += bytes([0, j - i]) + packed + bytes(len(packed) % 2)
            i = j
        out += b"\x00\x00"
    return bytes(out + b"\x00\x01")


def bgrx(palette_rgb):
    return b"".join(bytes([b, g, r, 0]) for r, g, b in palette_rgb)


def bmp_fixtures(photo_rgb):
    """The BMP variants Pillow cannot write: 16-bit (5-5-5, 5-6-5 bitfields), RLE8/RLE4, 32-bit
    bitfields, grey-ramp palettes; and run-length streams using every command."""
    f = []
    arr = np.asarray(photo_rgb)  # 29x37
    h, w = arr.shape[:2]
    f.append(("bmp_rgb16_555.bmp", bmp_file(w, h, 16, 0, bmp_rows16(arr, 5, 5))))
    f.append(("bmp_rgb16_565_bitfields.bmp", bmp_file(w, h, 16, 3, bmp_rows16(arr, 5, 6),
                                                      masks=[0xF800, 0x7E0, 0x1F])))
    f.append(("bmp_rgb16_555_bitfields_v4.bmp", bmp_file(w, h, 16, 3, bmp_rows16(arr, 5, 5), header=108,
                                                         masks=[0x7C00, 0x3E0, 0x1F, 0])))
    top = bmp_rows16(arr[::-1], 5, 6)  # rows stored top first
    f.append(("bmp_rgb16_565_topdown_v3.bmp", bmp_file(w, h, 16, 3, top, header=56, masks=[0xF800, 0x7E0, 0x1F, 0],
                                                       top_down=True)))
    f.append(("bmp_rgb16_os2.bmp", bmp_file(w, h, 16, 0, bmp_rows16(arr, 5, 5), header=12)))
    f.append(("bmp_rgb16_bad_masks.bmp", bmp_file(w, h, 16, 3, bmp_rows16(arr, 5, 5),
                                                  masks=[0x1F, 0x3E0, 0x7C00])))
    f.append(("bmp_rgb16_truncated.bmp", bmp_file(w, h, 16, 0, bmp_rows16(arr, 5, 5))[:-200]))
    x = np.concatenate([arr, np.full((h, w, 1), 77, np.uint8)], axis=2)  # R G B X in memory
    xbgr = x[::-1][..., [3, 2, 1, 0]]  # little-endian words 0xRRGGBBXX: bytes X B G R
    f.append(("bmp_bitfields32_xbgr.bmp", bmp_file(w, h, 32, 3, xbgr.tobytes(),
                                                   masks=[0xFF000000, 0xFF0000, 0xFF00])))
    # palette files: 8-bit with 64 colours, 4-bit with 16
    p8 = photo_rgb.quantize(64)
    idx8 = np.asarray(p8)
    pal8 = np.asarray(p8.getpalette()[:64 * 3]).reshape(-1, 3)
    f.append(("bmp_rle8.bmp", bmp_file(w, h, 8, 1, rle_bytes(idx8[::-1]), bgrx(pal8), colors=64)))
    p4 = photo_rgb.quantize(16)
    idx4 = np.asarray(p4)
    pal4 = np.asarray(p4.getpalette()[:16 * 3]).reshape(-1, 3)
    f.append(("bmp_rle4.bmp", bmp_file(w, h, 4, 2, rle_bytes(idx4[::-1], rle4=True), bgrx(pal4), colors=16)))
    f.append(("bmp_rle4_topdown.bmp", bmp_file(w, h, 4, 2, rle_bytes(idx4, rle4=True), bgrx(pal4), colors=16,
                                               top_down=True)))
    f.append(("bmp_rle8_truncated.bmp", bmp_file(w, h, 8, 1, rle_bytes(idx8[::-1])[:-300], bgrx(pal8), colors=64)))
    f.append(("bmp_rle8_early_end.bmp", bmp_file(w, h, 8, 1, rle_bytes(idx8[::-1][:-3]), bgrx(pal8), colors=64)))
    # every command, and what Pillow does at the edges: deltas (skipped pixels are index 0), a
    # run longer than the row (cut), absolute runs into the next row, indices past a 20-entry
    # palette (black), an RLE4 pair run and an odd absolute run
    s8 = bytes([5, 3, 0, 2, 4, 0, 40, 9, 0, 0,  # run, delta 4 right, run cut at the row end
                0, 2, 3, 2, 7, 60])  # delta 3 right 2 up, run
    s8 += bytes([0, 0]) + bytes([0, 41]) + bytes(range(100, 141)) + bytes(1)  # absolute run over a row end
    s8 += bytes([0, 0]) + bytes([0, 3, 250, 19, 20, 0, 12, 200, 0, 0])
    s8 += b"".join(rle_bytes(idx8[::-1][7:] % 20)[:-2] for _ in range(1)) + b"\x00\x01"
    f.append(("bmp_rle8_commands.bmp", bmp_file(w, h, 8, 1, s8, bgrx(pal8[:20]), colors=20)))
    s4 = bytes([7, 0x5A, 0, 2, 3, 1, 9, 0x12, 0, 0, 0, 5, 0x12, 0x34, 0x50, 0, 0, 0]) + bytes([0, 0])
    s4 += rle_bytes(idx4[::-1][2:], rle4=True)
    f.append(("bmp_rle4_commands.bmp", bmp_file(w, h, 4, 2, s4, bgrx(pal4), colors=16)))
    # grey ramps: Pillow ignores the palette (index = grey level, even past the ramp; for a
    # black-and-white palette any non-zero index is white)
    ramp = lambda n: b"".join(bytes([i, i, i, 0]) for i in range(n))
    grey = np.asarray(photo_rgb.convert("L"))
    f.append(("bmp_rle8_grey_ramp.bmp", bmp_file(w, h, 8, 1, rle_bytes(grey[::-1]), ramp(100), colors=100)))
    f.append(("bmp_rle8_bilevel.bmp", bmp_file(w, h, 8, 1, rle_bytes((grey[::-1] // 50) % 3), bgrx([(0, 0, 0),
                                               (255, 255, 255)]), colors=2)))
    rows8 = b"".join(r.tobytes() + bytes(-w % 4) for r in grey[::-1])
    f.append(("bmp_l8_short_ramp.bmp", bmp_file(w, h, 8, 0, rows8, ramp(100), colors=100)))
    f.append(("bmp_p8_short_palette.bmp", bmp_file(w, h, 8, 0, rows8, bgrx(pal8[:20]), colors=20)))
    # Pillow's grey shortcut at the wrong bit depth (refused by fp8q: Pillow reads these 4-bit
    # pixels as 8-bit ones, and these 8-bit pixels as 1-bit ones)
    rows4 = b"".join(np.packbits(np.unpackbits((r >> 4)[:, None], axis=1)[:, 4:].reshape(-1)).tobytes().ljust(
        (w * 4 + 31) // 32 * 4, b"\x00") for r in grey[::-1])
    f.append(("bmp_4bit_grey_ramp.bmp", bmp_file(w, h, 4, 0, rows4, ramp(16), colors=16)))
    f.append(("bmp_8bit_bilevel_palette.bmp", bmp_file(w, h, 8, 0, rows8, bgrx([(0, 0, 0), (255, 255, 255)]),
                                                       colors=2)))
    return f


def gif_lzw(indices, min_size, eoi_after=None, clear_when_full=True, clear_every=None, end=True, block=255,
            cut=None):
    """GIF image data by hand: the minimum code size byte, then LZW codes (LSB first) in
    sub-blocks of `block` bytes and the terminator. Options for what encoders do not write: an
    end code after `eoi_after` codes with the stream carrying on, no clear code when the table
    is full (`clear_when_full=False`), a clear code every `clear_every` codes, no final end code,
    the data cut to `cut` bytes (no terminator)."""
    clear, eoi = 1 << min_size, (1 << min_size) + 1
    bits, nbits = 0, 0
    out = bytearray()
    dec = {"size": min_size + 1, "next": clear + 2, "first": True}

    def put(code):
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += dec["size"]
        while nbits >= 8:
            out.append(bits & 255)
            bits >>= 8
            nbits -= 8

    emitted = 0

    def emit(code):
        # write with the decoder's code size, then follow the decoder's table
        nonlocal emitted
        put(code)
        emitted += 1
        if code == clear:
            dec.update(size=min_size + 1, next=clear + 2, first=True)
        elif code == eoi:
            pass
        elif dec["first"]:
            dec["first"] = False
        elif dec["next"] < 4096:
            if dec["next"] == (1 << dec["size"]) - 1 and dec["size"] < 12:
                dec["size"] += 1
            dec["next"] += 1
        if eoi_after is not None and emitted == eoi_after:
            put(eoi)

    def reset():
        return {(i,): i for i in range(clear)}, clear + 2

    emit(clear)
    table, nxt = reset()
    w = ()
    since_clear = 0
    for k in indices:
        wk = w + (int(k),)
        if wk in table:
            w = wk
            continue
        emit(table[w])
        since_clear += 1
        if nxt < 4096:
            table[wk] = nxt
            nxt += 1
        elif clear_when_full:
            emit(clear)
            table, nxt = reset()
            since_clear = 0
        if clear_every and since_clear >= clear_every:
            emit(clear)
            table, nxt = reset()
            since_clear = 0
        w = (int(k),)
    if w:
        emit(table[w])
    if end:
        put(eoi)
    if nbits:
        out.append(bits & 255)
    data = bytes(out)
    if cut is not None:
        data = data[:cut]
    blocks = b"".join(bytes([len(data[i:i + block])]) + data[i:i + block] for i in range(0, len(data), block))
    return bytes([min_size]) + blocks + (b"" if cut is not None else b"\x00")


def gif_interlace_order(idx):
    """The rows of a 2-D index array in GIF's interlaced order."""
    h = idx.shape[0]
    order = list(range(0, h, 8)) + list(range(4, h, 8)) + list(range(2, h, 4)) + list(range(1, h, 2))
    return idx[order]


def gif_file(screen, frames, global_palette=None, background=0, trailer=True, version=b"GIF89a"):
    """A GIF by hand. `frames`: dicts with `idx` (2-D index array), optional `at` (x0, y0),
    `size` (descriptor width, height; default the array's), `min_size`, `palette` (local,
    list of RGB triples), `interlace`, `transparency`, `before` (raw bytes placed before the
    descriptor), `data` (raw image data instead of encoding `idx`) and `lzw` (gif_lzw options)."""
    def table(pal):
        n = max(2, 1 << (len(pal) - 1).bit_length())
        flags = (n.bit_length() - 2)
        return flags, bytes(np.asarray(list(pal) + [(0, 0, 0)] * (n - len(pal)), np.uint8).ravel())

    out = bytearray(version + struct.pack("<HH", *screen))
    if global_palette is not None:
        f, t = table(global_palette)
        out += bytes([0x80 | 0x70 | f, background, 0]) + t
    else:
        out += bytes([0x70, background, 0])
    for fr in frames:
        out += fr.get("before", b"")
        if "transparency" in fr:
            out += b"\x21\xf9\x04" + bytes([1]) + struct.pack("<H", 0) + bytes([fr["transparency"]]) + b"\x00"
        idx = np.asarray(fr["idx"])
        h, w = idx.shape
        x0, y0 = fr.get("at", (0, 0))
        dw, dh = fr.get("size", (w, h))
        flags = 0x40 if fr.get("interlace") else 0
        local = b""
        if "palette" in fr:
            f, local = table(fr["palette"])
            flags |= 0x80 | f
        out += b"," + struct.pack("<HHHH", x0, y0, dw, dh) + bytes([flags]) + local
        rows = gif_interlace_order(idx) if fr.get("interlace") else idx
        out += fr.get("data") or gif_lzw(rows.ravel(), fr.get("min_size", 8), **fr.get("lzw", {}))
    if trailer:
        out += b";"
    return bytes(out)


def ico_dib(arr, bits, palette=None, top_down=False, mask_rows=None):
    """A headerless BMP (BITMAPINFOHEADER, height doubled) for an icon: `arr` is indices (1-8
    bits, with `palette` RGB triples) or RGB(A) pixels (24/32 bits); then the AND mask."""
    h, w = arr.shape[:2]
    colors = len(palette) if palette is not None else 0
    hdr = struct.pack("<IiiHHIIiiII", 40, w, (-2 * h) if top_down else 2 * h, 1, bits, 0, 0, 0, 0, colors, 0)
    pal = b"".join(bytes([b, g, r, 0]) for r, g, b in (palette or []))
    rows = arr if top_down else arr[::-1]
    data = b""
    for row in rows:
        if bits == 24:
            line = np.asarray(row)[:, [2, 1, 0]].astype(np.uint8).tobytes()
        elif bits == 32:
            line = np.asarray(row)[:, [2, 1, 0, 3]].astype(np.uint8).tobytes()
        else:
            line = bytearray()
            acc, n = 0, 0
            for x in row:
                acc = (acc << bits) | int(x)
                n += bits
                if n == 8:
                    line.append(acc)
                    acc, n = 0, 0
            if n:
                line.append(acc << (8 - n))
            line = bytes(line)
        data += line + bytes(-len(line) % 4)
    stride = (w + 31) // 32 * 4
    mask = bytes(stride * h) if mask_rows is None else mask_rows
    return hdr + pal + data + mask


def ico_file(frames):
    """An ICO of (width byte, height byte, colours byte, bpp, payload) frames."""
    head = struct.pack("<HHH", 0, 1, len(frames))
    offset = 6 + 16 * len(frames)
    dirs, body = b"", b""
    for wb, hb, nc, bpp, payload, *size in frames:
        dirs += struct.pack("<BBBBHHII", wb, hb, nc, 0, 1, bpp, size[0] if size else len(payload), offset + len(body))
        body += payload
    return head + dirs + body


def shorten_strip(tiff_bytes, strip, by):
    """A TIFF whose StripByteCounts says strip `strip` is `by` bytes shorter than it is."""
    import tifffile

    out = bytearray(tiff_bytes)
    with tifffile.TiffFile(io.BytesIO(tiff_bytes)) as t:
        tag = t.pages[0].tags["StripByteCounts"]
        counts = list(t.pages[0].databytecounts)
        fmt = t.byteorder + {3: "H", 4: "I", 16: "Q"}[tag.dtype]
        at = tag.valueoffset
    counts[strip] -= by
    for k, c in enumerate(counts):
        struct.pack_into(fmt, out, at + k * struct.calcsize(fmt), c)
    return bytes(out)


def set_tag(tiff_bytes, name, *values):
    """A TIFF whose tag `name` (SHORT, LONG or LONG8 values, in the entry or out of it) holds
    `values`, written in the tag's own type."""
    import tifffile

    out = bytearray(tiff_bytes)
    with tifffile.TiffFile(io.BytesIO(tiff_bytes)) as t:
        tag = t.pages[0].tags[name]
        fmt = t.byteorder + {3: "H", 4: "I", 16: "Q"}[tag.dtype] * len(values)
        struct.pack_into(fmt, out, tag.valueoffset, *values)
    return bytes(out)


def hide_tag(tiff_bytes, name, code=65000):
    """A TIFF whose tag `name` is renamed to the private `code` in its directory entry: readers
    see the file without that tag (the entries are then out of order, which they tolerate)."""
    import tifffile

    out = bytearray(tiff_bytes)
    with tifffile.TiffFile(io.BytesIO(tiff_bytes)) as t:
        struct.pack_into(t.byteorder + "H", out, t.pages[0].tags[name].offset, code)
    return bytes(out)


def tiff_by_hand(tags, chunks, offsets_tag=273, counts_tag=279):
    """A little-endian classic TIFF written by hand: `tags` is a list of (tag, type, values) with
    types 3 (SHORT), 4 (LONG) and 5 (RATIONAL, values as (numerator, denominator) pairs); the
    `chunks` (strips or tiles, already compressed) follow, their offsets and byte counts filled
    in as `offsets_tag` and `counts_tag`."""
    tags = [t for t in tags if t[0] not in (offsets_tag, counts_tag)]
    tags += [(offsets_tag, 4, [0] * len(chunks)), (counts_tag, 4, [len(c) for c in chunks])]
    tags.sort()
    ifd_size = 2 + 12 * len(tags) + 4

    def raw(typ, vals):
        if typ == 5:
            return b"".join(struct.pack("<II", n, d) for n, d in vals)
        return struct.pack("<%d%s" % (len(vals), "H" if typ == 3 else "I"), *vals)

    extra_size = sum(len(raw(t, v)) for _, t, v in tags if len(raw(t, v)) > 4)
    chunk_at, offsets = 8 + ifd_size + extra_size, []
    for c in chunks:
        offsets.append(chunk_at)
        chunk_at += len(c)
    extra, entries = bytearray(), []
    for tag, typ, vals in tags:
        if tag == offsets_tag:
            vals = offsets
        b = raw(typ, vals)
        count = len(vals)
        if len(b) <= 4:
            entries.append(struct.pack("<HHI", tag, typ, count) + b.ljust(4, b"\x00"))
        else:
            entries.append(struct.pack("<HHII", tag, typ, count, 8 + ifd_size + len(extra)))
            extra += b
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + b"".join(entries) + bytes(4)
            + bytes(extra) + b"".join(chunks))


def tiff_ycbcr(rgb, sub, compression, rps=None, tile=None, refbw=None, coefficients=None, sub_tag=True, seed=0):
    """A YCbCr TIFF of the RGB image `rgb` (Pillow's YCbCr conversion) in libtiff's data units of
    `sub` = (h, v) subsampling: h·v luma samples, then the block's mean Cb and Cr; units past the
    image hold random bytes. Strips of `rps` rows or `tile` = (width, length) tiles, compressed
    with "lzw", "zlib" or "packbits" (imagecodecs, zlib). Optional ReferenceBlackWhite (6
    rationals), YCbCrCoefficients (3 rationals), and no YCbCrSubsampling tag."""
    import zlib

    import imagecodecs

    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr")).astype(np.int64)
    h, w = ycc.shape[:2]
    hs, vs = sub
    rng = np.random.default_rng(seed)
    pw, ph = tile if tile else (w, rps or h)
    chunks = []
    for y0 in range(0, h, ph):
        for x0 in range(0, w, pw):
            rows = ph if tile else min(ph, h - y0)
            out = bytearray()
            for br in range(-(-rows // vs)):
                for bu in range(-(-pw // hs)):
                    ys = [y0 + br * vs + r for r in range(vs)]
                    xs = [x0 + bu * hs + c for c in range(hs)]
                    seen = [(y, x) for y in ys for x in xs if y < h and x < w and y < y0 + rows and x < x0 + pw]
                    for y in ys:
                        for x in xs:
                            inside = (y, x) in seen
                            out.append(int(ycc[y, x, 0]) if inside else int(rng.integers(256)))
                    for k in (1, 2):
                        out.append(int(round(np.mean([ycc[y, x, k] for y, x in seen]))) if seen
                                   else int(rng.integers(256)))
            data = bytes(out)
            chunks.append({"lzw": imagecodecs.lzw_encode, "zlib": zlib.compress,
                           "packbits": imagecodecs.packbits_encode}[compression](data))
    code = {"lzw": 5, "zlib": 8, "packbits": 32773}[compression]
    tags = [(256, 4, [w]), (257, 4, [h]), (258, 3, [8, 8, 8]), (259, 3, [code]), (262, 3, [6]), (277, 3, [3]),
            (284, 3, [1])]
    if tile:
        tags += [(322, 3, [pw]), (323, 3, [ph])]
    else:
        tags += [(278, 4, [ph])]
    if sub_tag:
        tags.append((530, 3, list(sub)))
    if coefficients:
        tags.append((529, 5, coefficients))
    if refbw:
        tags.append((532, 5, refbw))
    if tile:
        return tiff_by_hand(tags, chunks, 324, 325)
    return tiff_by_hand(tags, chunks)


def tiff_packed(idx, bits, colormap=None):
    """An uncompressed little-endian TIFF of 1/2/4-bit samples (grey, or palette with a
    `colormap` of 3 x 2**bits 16-bit values) by hand: tifffile packs sub-byte samples only with
    imagecodecs, Pillow not at all."""
    h, w = idx.shape
    rows = b"".join(np.packbits(np.unpackbits(r[:, None], axis=1)[:, 8 - bits:].reshape(-1)).tobytes()
                    for r in idx.astype(np.uint8))
    tags = [(256, 3, [w]), (257, 3, [h]), (258, 3, [bits]), (259, 3, [1]), (262, 3, [3 if colormap is not None else 1]),
            (273, 4, [0]), (277, 3, [1]), (278, 3, [h]), (279, 4, [len(rows)])]
    if colormap is not None:
        tags.append((320, 3, [int(v) for v in np.asarray(colormap).reshape(-1)]))
    tags.sort()
    ifd_size = 2 + 12 * len(tags) + 4
    extra, entries = bytearray(), []
    data_at = 8 + ifd_size
    for tag, typ, vals in tags:
        fmt = "<%d%s" % (len(vals), "H" if typ == 3 else "I")
        raw = struct.pack(fmt, *vals)
        if len(raw) <= 4:
            entries.append(struct.pack("<HHI", tag, typ, len(vals)) + raw.ljust(4, b"\x00"))
        else:
            entries.append(struct.pack("<HHII", tag, typ, len(vals), data_at + len(extra)))
            extra += raw
    strip_at = data_at + len(extra)
    entries = [e if not e.startswith(struct.pack("<H", 273)) else struct.pack("<HHII", 273, 4, 1, strip_at)
               for e in entries]
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + b"".join(entries) + bytes(4)
            + bytes(extra) + rows)


def tiff_fixtures(photo_rgb):
    """The TIFF layouts beyond 8-bit grey/RGB: palette, 1/2/4/16-bit grey, 16-bit RGB, CMYK,
    white-is-zero, tiles, JPEG compression, the Orientation tag; and variants we refuse (CCITT
    G4)."""
    import tifffile  # writes what Pillow cannot: 16-bit RGB and big-endian files

    def tif(**kw):
        b = io.BytesIO()
        tifffile.imwrite(b, **kw)
        return b.getvalue()

    f = []
    arr = np.asarray(photo_rgb)  # 29x37
    grey = np.asarray(photo_rgb.convert("L"))
    pal = photo_rgb.quantize(64)
    f.append(("tif_p8_raw.tif", saved(pal, "TIFF")))
    f.append(("tif_p8_lzw.tif", saved(pal, "TIFF", compression="tiff_lzw")))
    cmap = np.stack([np.arange(16) * 4369, 65535 - np.arange(16) * 4000, (np.arange(16) * 7919) % 65536])
    f.append(("tif_p4_raw.tif", tiff_packed(grey >> 4, 4, cmap)))
    f.append(("tif_l4_raw.tif", tiff_packed(grey >> 4, 4)))
    f.append(("tif_l2_raw.tif", tiff_packed(grey >> 6, 2)))
    f.append(("tif_1bit_raw.tif", saved(photo_rgb.convert("1"), "TIFF")))
    f.append(("tif_1bit_packbits.tif", saved(photo_rgb.convert("1"), "TIFF", compression="packbits")))
    f.append(("tif_1bit_g4.tif", saved(photo_rgb.convert("1"), "TIFF", compression="group4")))
    # 1-bit white-is-zero (Pillow's "1;I"): Pillow writes black-is-zero, so the tag is patched
    f.append(("tif_1bit_miniswhite_packbits.tif", set_tag(saved(photo_rgb.convert("1"), "TIFF",
                                                                compression="packbits"),
                                                          "PhotometricInterpretation", 0)))
    # 16-bit grey spanning 0..~400: Pillow clips above 255
    g16 = (grey.astype(np.uint16) * 3 // 2 + np.arange(grey.size).reshape(grey.shape) % 5).astype(np.uint16)
    f.append(("tif_l16_raw.tif", saved(Image.frombytes("I;16", photo_rgb.size, g16.astype("<u2").tobytes()), "TIFF")))
    f.append(("tif_l16_deflate.tif", saved(Image.frombytes("I;16", photo_rgb.size, g16.astype("<u2").tobytes()),
                                           "TIFF", compression="tiff_adobe_deflate")))
    f.append(("tif_l16be_raw.tif", tif(data=g16, byteorder=">", photometric="minisblack")))
    f.append(("tif_l16be_deflate_predictor.tif", tif(data=g16, byteorder=">", photometric="minisblack",
                                                     compression="zlib", predictor=True)))
    rgb16 = (arr.astype(np.uint16) * 257 + np.arange(arr.size).reshape(arr.shape) % 301).astype(np.uint16)
    f.append(("tif_rgb16_raw.tif", tif(data=rgb16, photometric="rgb")))
    f.append(("tif_rgb16be_deflate.tif", tif(data=rgb16, photometric="rgb", byteorder=">", compression="zlib")))
    f.append(("tif_rgba16_raw.tif", tif(data=np.dstack([rgb16, rgb16[..., :1] ^ 0x5A5A]), photometric="rgb",
                                        extrasamples=["unassalpha"])))
    cmyk = photo_rgb.convert("CMYK")
    f.append(("tif_cmyk_raw.tif", saved(cmyk, "TIFF")))
    f.append(("tif_cmyk_lzw.tif", saved(cmyk, "TIFF", compression="tiff_lzw")))
    c16 = (np.asarray(cmyk).astype(np.uint16) * 257 + 99).astype(np.uint16)
    f.append(("tif_cmyk16_raw.tif", tif(data=c16, photometric="separated")))
    f.append(("tif_miniswhite_raw.tif", tif(data=grey, photometric="miniswhite")))
    # tiled, with tiles past the right and bottom edges; the `tiff` crate's own reading of the
    # 16 x 48 tiles of these two (48 > 37) fails with "no lzw end code found"
    f.append(("tif_tiled_lzw_rgb.tif", tif(data=arr, photometric="rgb", tile=(16, 48), compression="lzw")))
    f.append(("tif_tiled_lzw_l.tif", tif(data=grey, photometric="minisblack", tile=(16, 48), compression="lzw")))
    f.append(("tif_tiled_lzw_l16_predictor.tif", tif(data=g16, photometric="minisblack", tile=(16, 16),
                                                     compression="lzw", predictor=True)))
    pal_idx = np.asarray(pal)
    pal_rgb = np.zeros((256, 3), np.uint16)
    pal_rgb[:64] = np.asarray(pal.getpalette()[:192]).reshape(64, 3)
    pal_map = (pal_rgb.T * 257).astype(np.uint16)
    f.append(("tif_tiled_deflate_p8.tif", tif(data=pal_idx, photometric="palette", colormap=pal_map, tile=(16, 16),
                                              compression="zlib")))
    # JPEG compression (libtiff + libjpeg, as Pillow reads it): YCbCr 4:2:0 in tiles past the
    # edges, grey strips, CMYK (as stored), and a strip whose JPEG data is cut short
    # float and signed grey, 16-bit white-is-zero; big-endian compressed files, which Pillow
    # reads byte-swapped (libtiff's native-order samples under a big-endian raw mode)
    small_grey = grey[:13, :17]
    fl = (small_grey.astype(np.float32) * 1.37 - 40.3).astype(np.float32)
    fl[0, :6] = [np.nan, np.inf, -np.inf, -0.0, 254.99998, 255.0]
    f.append(("tif_float_grey_raw.tif", tif(data=fl, photometric="minisblack")))
    f.append(("tif_float_grey_be_lzw.tif", tif(data=fl, photometric="minisblack", byteorder=">", compression="lzw")))
    f.append(("tif_int16_grey_be_lzw.tif", tif(data=small_grey.astype(np.int16) * 2 - 100, photometric="minisblack",
                                               byteorder=">", compression="lzw")))
    f.append(("tif_white16_raw.tif", tif(data=small_grey.astype(np.uint16) * 3, photometric="miniswhite")))
    # separate planes (8-bit): uncompressed RGBA, LZW RGB in strips of 7 rows
    rgba = np.dstack([arr, grey])
    f.append(("tif_planar_rgba_raw.tif", tif(data=np.moveaxis(rgba, 2, 0).copy(), photometric="rgb",
                                             planarconfig="separate", extrasamples=["unassalpha"])))
    f.append(("tif_planar_rgb_lzw.tif", tif(data=np.moveaxis(arr, 2, 0).copy(), photometric="rgb",
                                            planarconfig="separate", rowsperstrip=7, compression="lzw")))
    # separate planes (16-bit): uncompressed ones Pillow reads with one 8-bit letter of the raw
    # mode a strip (the first rows·width bytes of each, as stored: low and high bytes mixed);
    # compressed ones through libtiff, the high byte of each native-order sample
    a16 = arr.astype(np.uint16) * 256 + (255 - arr.astype(np.uint16))
    f.append(("tif_planar16_rgb_be_raw_rps5.tif", tif(data=np.moveaxis(a16, 2, 0).copy(), photometric="rgb",
                                                      planarconfig="separate", rowsperstrip=5, byteorder=">")))
    cmyk16 = np.asarray(photo_rgb.convert("CMYK")).astype(np.uint16) * 251 + 7
    f.append(("tif_planar16_cmyk_deflate_predictor.tif", tif(data=np.moveaxis(cmyk16, 2, 0).copy(),
                                                             photometric="separated", planarconfig="separate",
                                                             compression="zlib", predictor=2, rowsperstrip=8)))
    # tiles of separate planes (edge tiles right and below): compressed ones through libtiff;
    # uncompressed 16-bit ones read by Pillow with an 8-bit letter and, for tiles past the right
    # edge, a row stride of the tile's width in bytes a sample; RGBA planes without an
    # ExtraSamples tag, which libtiff calls unspecified and Pillow then un-premultiplies (padded
    # uncompressed, Pillow's stride counts 3 samples: the last tile reads past the planes)
    f.append(("tif_planar16_tiled_raw.tif", tif(data=np.moveaxis(a16, 2, 0).copy(), photometric="rgb",
                                                planarconfig="separate", tile=(16, 16))))
    f.append(("tif_planar_tiled_noextra_rgba_deflate.tif",
              hide_tag(tif(data=np.moveaxis(rgba, 2, 0).copy(), photometric="rgb", planarconfig="separate",
                           extrasamples=["unspecified"], tile=(16, 16), compression="zlib"), "ExtraSamples")))
    f.append(("tif_planar_tiled_noextra_rgba_raw_padded.tif",
              hide_tag(tif(data=np.moveaxis(rgba, 2, 0).copy(), photometric="rgb", planarconfig="separate",
                           extrasamples=["unspecified"], tile=(16, 16)), "ExtraSamples") + bytes(range(256)) * 2))
    f.append(("tif_planar16_assoc_rgba_lzw.tif", tif(data=np.moveaxis(np.dstack([a16, a16[..., :1] // 2 + 9]), 2, 0).copy(),
                                                     photometric="rgb", planarconfig="separate",
                                                     extrasamples=["assocalpha"], compression="lzw")))
    # YCbCr compressed other than with JPEG, which Pillow has libtiff's TIFFRGBAImage convert:
    # 4x4 blocks, an odd number across (libtiff reads the strips short of their last Cb, Cr);
    # tiles with other ReferenceBlackWhite and YCbCrCoefficients; damaged LZW and PackBits data,
    # which libtiff decodes up to the damage and zeroes after (Pillow keeps the image)
    f.append(("tif_ycbcr44_lzw_w9.tif", tiff_ycbcr(arr[:13, :9], (4, 4), "lzw", rps=5)))
    f.append(("tif_ycbcr22_lzw_tiles_refbw.tif",
              tiff_ycbcr(arr[:19, :21], (2, 2), "lzw", tile=(16, 16),
                         refbw=[(16, 1), (235, 1), (128, 1), (240, 1), (128, 1), (240, 1)],
                         coefficients=[(2126, 10000), (7152, 10000), (722, 10000)])))
    lzw = bytearray(tiff_ycbcr(arr[:12, :14], (4, 2), "lzw", rps=6))
    lzw[-20] ^= 0x5A  # within the last strip's codes
    f.append(("tif_ycbcr42_lzw_damaged.tif", bytes(lzw)))
    pb = tiff_ycbcr(arr[:10, :12], (2, 1), "packbits", rps=10)
    with tifffile.TiffFile(io.BytesIO(pb)) as t:
        half = t.pages[0].databytecounts[0] // 2
    f.append(("tif_ycbcr21_packbits_short.tif", set_tag(pb, "StripByteCounts", half)))
    # a damaged directory: the Software tag's data points past the end of the file, so Pillow
    # stops reading the directory there and never sees ExtraSamples (premultiplied alpha): the
    # pixels are read as plain RGBA
    damaged = bytearray(tif(data=rgba, photometric="rgb", extrasamples=["assocalpha"], software="x" * 40))
    with tifffile.TiffFile(io.BytesIO(bytes(damaged))) as t:
        desc = t.pages[0].tags["Software"]
        # the entry's value field: 8 bytes after the entry's start
        struct.pack_into(t.byteorder + "I", damaged, desc.offset + 8, len(damaged) + 1000)
    f.append(("tif_damaged_directory.tif", bytes(damaged)))
    # uncompressed YCbCr: Pillow reads 3 samples a pixel, whatever the subsampling tag says
    # (here the TIFF default, 2 x 2), and converts with its own tables
    ycc = saved(photo_rgb.convert("YCbCr"), "TIFF")
    f.append(("tif_ycbcr_uncompressed.tif", ycc))
    f.append(("tif_ycbcr_uncompressed_tag22.tif", set_tag(ycc, "YCbCrSubSampling", 2, 2)))
    f.append(("tif_jpeg_ycbcr420_tiled.tif", tif(data=arr, photometric="ycbcr", compression="jpeg",
                                                 subsampling=(2, 2), tile=(16, 16))))
    f.append(("tif_jpeg_grey_rps5.tif", tif(data=grey, photometric="minisblack", compression="jpeg", rowsperstrip=5)))
    f.append(("tif_jpeg_cmyk.tif", saved(cmyk, "TIFF", compression="jpeg")))
    f.append(("tif_jpeg_strip_cut.tif", shorten_strip(tif(data=arr, photometric="ycbcr", compression="jpeg",
                                                          rowsperstrip=16), 1, 150)))
    small = photo_rgb.crop((3, 5, 16, 12))  # 13x7
    for o in range(2, 9):
        f.append((f"tif_orientation{o}.tif", saved(small, "TIFF", tiffinfo={274: o})))
    return f


def saved(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


# ---------------------------------------------------------------------------------------------

def fixtures():
    """(file name, bytes) of every fixture."""
    chelsea, coffee = photo("chelsea.png"), photo("coffee.png")
    astro, rocket = photo("astronaut.png"), photo("rocket.jpg")
    camera = photo("camera.png", mode="L")
    motor = photo("motorcycle_left.png")
    f = []
    # --- JPEG
    f.append(("j420_q90_500x375.jpg", jpeg_bytes(coffee.resize((500, 375), Image.LANCZOS), quality=90,
                                                 subsampling=2)))
    f.append(("j420_q75_333x201.jpg", jpeg_bytes(chelsea.resize((333, 201), Image.LANCZOS), quality=75,
                                                 subsampling=2)))
    f.append(("j422_q85_257x189.jpg", jpeg_bytes(astro.resize((257, 189), Image.LANCZOS), quality=85,
                                                 subsampling=1)))
    f.append(("j444_q95_181x271.jpg", jpeg_bytes(rocket.resize((181, 271), Image.LANCZOS), quality=95,
                                                 subsampling=0)))
    f.append(("j440_q85_203x151.jpg", encode_440(motor.resize((203, 151), Image.LANCZOS), 85)))
    f.append(("j411_q85_cjpeg_157x103.jpg", cjpeg(chelsea.resize((157, 103), Image.LANCZOS), "-quality", "85",
                                                  "-sample", "4x1")))
    f.append(("jarith_q85_cjpeg_141x95.jpg", cjpeg(coffee.resize((141, 95), Image.LANCZOS), "-quality", "85",
                                                   "-arithmetic")))
    f.append(("jarith_prog_q80_cjpeg_95x141.jpg", cjpeg(rocket.resize((95, 141), Image.LANCZOS), "-quality", "80",
                                                        "-arithmetic", "-progressive")))
    f.append(("jprog420_q85_301x199.jpg", jpeg_bytes(coffee.resize((301, 199), Image.LANCZOS), quality=85,
                                                     subsampling=2, progressive=True)))
    f.append(("jprog422_q80_200x133.jpg", jpeg_bytes(chelsea.resize((200, 133), Image.LANCZOS), quality=80,
                                                     subsampling=1, progressive=True)))
    f.append(("jprog444_q90_150x151.jpg", jpeg_bytes(astro.resize((150, 151), Image.LANCZOS), quality=90,
                                                     subsampling=0, progressive=True)))
    f.append(("jgray_q80_211x157.jpg", jpeg_bytes(camera.resize((211, 157), Image.LANCZOS), quality=80)))
    f.append(("jgray_prog_q70_129x97.jpg", jpeg_bytes(camera.resize((129, 97), Image.LANCZOS), quality=70,
                                                      progressive=True)))
    cmyk = chelsea.resize((173, 115), Image.LANCZOS).convert("CMYK")
    cmyk_bytes = jpeg_bytes(cmyk, quality=85)
    f.append(("jcmyk_adobe_q85_173x115.jpg", cmyk_bytes))
    f.append(("jcmyk_noadobe_q85_173x115.jpg", strip_segment(cmyk_bytes, 0xEE)))
    f.append(("jcmyk_prog_q80_97x131.jpg", jpeg_bytes(rocket.resize((97, 131), Image.LANCZOS).convert("CMYK"),
                                                      quality=80, progressive=True)))
    f.append(("jrgb_keep_q90_120x90.jpg", jpeg_bytes(astro.resize((120, 90), Image.LANCZOS), quality=90,
                                                     keep_rgb=True, subsampling=0)))
    f.append(("jrestart_blocks7_q80_245x163.jpg", jpeg_bytes(motor.resize((245, 163), Image.LANCZOS),
                                                             quality=80, subsampling=2,
                                                             restart_marker_blocks=7)))
    f.append(("jrestart_rows1_prog_q80_163x245.jpg", jpeg_bytes(rocket.resize((163, 245), Image.LANCZOS),
                                                                quality=80, subsampling=2, progressive=True,
                                                                restart_marker_rows=1)))
    f.append(("jq100_444_64x48.jpg", jpeg_bytes(chelsea.resize((64, 48), Image.LANCZOS), quality=100,
                                                subsampling=0)))
    f.append(("jq10_420_161x107.jpg", jpeg_bytes(coffee.resize((161, 107), Image.LANCZOS), quality=10,
                                                 subsampling=2)))
    f.append(("jtiny_1x1.jpg", jpeg_bytes(astro.resize((1, 1), Image.LANCZOS), quality=90)))
    f.append(("jtiny_17x9_420.jpg", jpeg_bytes(astro.resize((17, 9), Image.LANCZOS), quality=90, subsampling=2)))
    f.append(("jtiny_9x17_422.jpg", jpeg_bytes(rocket.resize((9, 17), Image.LANCZOS), quality=90, subsampling=1)))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display; Image.open ignores it
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    srgb = srgb[:24] + bytes(12) + srgb[36:]  # creation time zeroed: reproducible fixture
    f.append(("jexif6_icc_q85_150x100.jpg", jpeg_bytes(chelsea.resize((150, 100), Image.LANCZOS), quality=85,
                                                       exif=exif.tobytes(), icc_profile=srgb)))
    f.append(("jwarn_extraneous_q85_120x80.jpg", insert_before_sos(
        jpeg_bytes(chelsea.resize((120, 80), Image.LANCZOS), quality=85), b"\x00\x11\x22")))
    f.append(("jwarn_corrupt_scan_q85_160x107.jpg", corrupt_scan(
        jpeg_bytes(coffee.resize((160, 107), Image.LANCZOS), quality=85))))
    f.append(("png_saved_as.JPEG", saved(chelsea.resize((120, 80), Image.LANCZOS), "PNG")))
    good = jpeg_bytes(coffee.resize((120, 80), Image.LANCZOS), quality=85)
    f.append(("bad_truncated_half.jpg", good[:len(good) // 2]))
    f.append(("bad_no_eoi.jpg", good[:-2]))
    f.append(("bad_garbage.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4))
    f.append(("bad_empty.jpg", b""))
    # --- PNG
    small = chelsea.resize((90, 60), Image.LANCZOS)
    f.append(("png_rgb8.png", saved(small, "PNG")))
    f.append(("png_rgba8.png", saved(Image.merge("RGBA", (*small.split(), small.convert("L"))), "PNG")))
    f.append(("png_l8.png", saved(small.convert("L"), "PNG")))
    f.append(("png_la8.png", saved(small.convert("LA"), "PNG")))
    pal = small.quantize(64)
    f.append(("png_p.png", saved(pal, "PNG")))
    f.append(("png_p_trns.png", saved(pal, "PNG", transparency=3)))
    f.append(("png_p_4bit.png", saved(small.quantize(16), "PNG", bits=4)))
    f.append(("png_1bit.png", saved(small.convert("1"), "PNG")))
    f.append(("png_l_trns.png", saved(small.convert("L"), "PNG", transparency=128)))
    f.append(("png_rgb_trns.png", saved(small, "PNG", transparency=(10, 20, 30))))
    a = np.asarray(small).astype(np.uint32)
    rgb16 = (a * 257 + np.arange(a.size).reshape(a.shape) % 251).astype(np.uint16)
    f.append(("png_rgb16.png", png_bytes(rgb16, 2, 16)))
    alpha16 = rgb16[..., :1] ^ 0x5A5A
    f.append(("png_rgba16.png", png_bytes(np.concatenate([rgb16, alpha16], axis=2), 6, 16)))
    f.append(("png_l16.png", png_bytes(rgb16[..., 0] // 97, 0, 16)))
    f.append(("png_la16.png", png_bytes(np.stack([rgb16[..., 1], rgb16[..., 2]], axis=2), 4, 16)))
    f.append(("png_gray2bit.png", png_bytes(np.asarray(small.convert("L")) >> 6, 0, 2)))
    idx = (np.arange(40 * 30).reshape(30, 40) % 256).astype(np.uint8)  # indices past a 4-entry PLTE
    f.append(("png_p_short_palette.png", png_bytes(idx, 3, 8, chunks=[(b"PLTE", bytes(range(10, 22)))])))
    f.append(("png_rgb8_adam7.png", png_bytes(np.asarray(small.resize((37, 23))), 2, 8, interlace=True)))
    f.append(("png_saved_as.jpg", saved(small, "PNG")))
    # --- BMP
    f.append(("bmp_rgb24.bmp", saved(small, "BMP")))
    f.append(("bmp_l8.bmp", saved(small.convert("L"), "BMP")))
    f.append(("bmp_p8.bmp", saved(pal, "BMP")))
    f.append(("bmp_1bit.bmp", saved(small.convert("1"), "BMP")))
    f.append(("bmp_rgba32.bmp", saved(small.convert("RGBA"), "BMP")))
    f += bmp_fixtures(chelsea.resize((37, 29), Image.LANCZOS))
    # --- PPM / PGM
    f.append(("ppm_p6.ppm", saved(small, "PPM")))
    f.append(("pgm_p5.pgm", saved(small.convert("L"), "PPM")))
    f.append(("pgm_p5_16bit.pgm", pnm_bytes(rgb16[..., 0] // 97, "P5", 65535)))
    f.append(("ppm_p6_maxval1000.ppm", pnm_bytes(np.asarray(small).astype(np.uint32) * 1000 // 255, "P6", 1000)))
    f.append(("ppm_p3_plain.ppm", pnm_bytes(np.asarray(small.resize((20, 13))), "P3", 255)))
    f.append(("pgm_p2_plain.pgm", pnm_bytes(np.asarray(small.convert("L").resize((20, 13))), "P2", 255)))
    f.append(("ppm_p4_as.ppm", saved(small.convert("1"), "PPM")))
    # --- TIFF
    f.append(("tif_rgb_raw.tif", saved(small, "TIFF")))
    f.append(("tif_rgb_lzw.tiff", saved(small, "TIFF", compression="tiff_lzw")))
    f.append(("tif_rgb_deflate.tif", saved(small, "TIFF", compression="tiff_adobe_deflate")))
    f.append(("tif_rgb_packbits.tif", saved(small, "TIFF", compression="packbits")))
    f.append(("tif_l_lzw.tif", saved(small.convert("L"), "TIFF", compression="tiff_lzw")))
    f.append(("tif_rgba_raw.tif", saved(small.convert("RGBA"), "TIFF")))
    f.append(("tif_rgb_jpeg.tif", saved(small, "TIFF", compression="jpeg", quality=85)))
    f += tiff_fixtures(chelsea.resize((37, 29), Image.LANCZOS))
    # --- WebP
    f.append(("webp_lossless_rgb.webp", saved(small, "WEBP", lossless=True)))
    f.append(("webp_lossless_rgba.webp", saved(Image.merge("RGBA", (*small.split(), small.convert("L"))), "WEBP",
                                               lossless=True)))
    f.append(("webp_lossy_q80.webp", saved(chelsea.resize((151, 101), Image.LANCZOS), "WEBP", quality=80)))
    f.append(("webp_lossy_rgba_q80.webp", saved(Image.merge("RGBA", (*small.split(), small.convert("L"))),
                                                "WEBP", quality=80)))
    f += audit_fixtures(chelsea.resize((37, 29), Image.LANCZOS))
    return [(name, data) for name, data in f if data is not None]


def gif_fixtures(photo_rgb):
    """GIF by hand, where Pillow's reading of the first frame has rules of its own: a frame past
    the logical screen (the canvas grows), interlaced rows, transparency (the canvas starts as
    the transparent index; the frame is not masked), a local grey-ramp palette hiding a global
    colour one (Pillow applies the global one), indices past the palette's end (black), an end
    code in the middle (decoding carries on; in a small file Pillow then finds it truncated)."""
    q = photo_rgb.quantize(48)
    idx = np.asarray(q)  # 29 x 37
    pal = [tuple(q.getpalette()[3 * i:3 * i + 3]) for i in range(48)]
    ramp = [(i, i, i) for i in range(256)]
    f = []
    f.append(("gif_interlaced_past_screen.gif", gif_file((30, 20), [dict(idx=idx, at=(2, 3), interlace=True,
                                                                          palette=pal, transparency=7)])))
    f.append(("gif_local_ramp_global_colour.gif", gif_file((37, 29), [dict(idx=idx, palette=ramp)],
                                                           global_palette=pal)))
    f.append(("gif_index_past_palette.gif", gif_file((37, 29), [dict(idx=idx, min_size=6)],
                                                     global_palette=pal[:20])))
    f.append(("gif_end_code_early.gif", gif_file((37, 29), [dict(idx=idx, lzw=dict(eoi_after=100))],
                                                 global_palette=pal)))
    f.append(("gif_long_stream_clear_every9.gif", gif_file((37, 20), [dict(idx=idx, size=(37, 20),
                                                                           lzw=dict(clear_every=9))],
                                                           global_palette=pal)))
    return f


def audit_fixtures(photo_rgb):
    """Regressions found by tools/image_diff.py (the differential audit against Pillow): damaged
    PNG that Pillow still decodes (or not), BMP with the 64-byte OS/2 2.x header, TIFF extra
    samples, premultiplied alpha, 32-bit and signed grey, BigTIFF, an animated WebP whose first
    frame is smaller than the canvas; GIF content under other names and the rules of Pillow's GIF
    reading (see gif_fixtures); ICO; PFM and Pillow's P0CMYK; and a format fp8q refuses by name
    (lossless JPEG)."""
    import tifffile

    def tif(**kw):
        b = io.BytesIO()
        tifffile.imwrite(b, **kw)
        return b.getvalue()

    f = []
    arr = np.asarray(photo_rgb)  # 29x37
    h, w = arr.shape[:2]
    grey = np.asarray(photo_rgb.convert("L"))
    good = saved(photo_rgb, "PNG")
    iend = good.rindex(b"IEND") - 4
    f.append(("png_no_iend.png", good[:iend]))
    f.append(("png_cut_in_adler.png", good[:iend - 6]))  # all rows there: Pillow decodes
    f.append(("png_cut_before_last_row.png", good[:iend - 40]))
    bad = bytearray(good)
    bad[iend - 5] ^= 0x55  # Adler-32: Pillow raises
    f.append(("png_bad_adler.png", bytes(bad)))
    idat = good.index(b"IDAT")
    n = struct.unpack(">I", good[idat - 4:idat])[0]
    f.append(("png_bad_idat_crc.png", good[:idat + 4 + n] + bytes(4) + good[idat + 8 + n:]))
    f.append(("png_unknown_critical_chunk.png", png_bytes(arr, 2, 8, chunks=[(b"CRIT", b"xyz")])))
    rows24 = b"".join(r[:, ::-1].tobytes() + bytes(-(3 * w) % 4) for r in arr[::-1])
    f.append(("bmp_rgb24_os2v2_header64.bmp", bmp_file(w, h, 24, 0, rows24, header=64)))
    p8 = photo_rgb.quantize(40)
    rows8 = b"".join(r.tobytes() + bytes(-w % 4) for r in np.asarray(p8)[::-1])
    pal = np.asarray(p8.getpalette()[:120]).reshape(-1, 3)
    f.append(("bmp_p8_os2v2_header64.bmp", bmp_file(w, h, 8, 0, rows8, bgrx(pal), header=64, colors=40)))
    f.append(("tif_rgbx_unspecified_extra.tif", tif(data=np.dstack([arr, grey]), photometric="rgb",
                                                   extrasamples=["unspecified"])))
    f.append(("tif_rgba_premultiplied.tif", tif(data=np.dstack([arr, grey]), photometric="rgb",
                                                extrasamples=["assocalpha"])))
    f.append(("tif_i32_grey.tif", tif(data=grey.astype(np.int32) * 3 - 200, photometric="minisblack")))
    f.append(("tif_u32_grey.tif", tif(data=grey.astype(np.uint32) * 2 + (grey > 200) * 0x80000000,
                                      photometric="minisblack")))
    f.append(("tif_i16_grey.tif", tif(data=grey.astype(np.int16) * 2 - 100, photometric="minisblack")))
    f.append(("tif_rgb_bigtiff.tif", tif(data=arr, photometric="rgb", bigtiff=True)))
    # animated WebP: a 20x14 lossless frame at (10, 6) on a 37x29 canvas
    vp8l = saved(photo_rgb.crop((3, 3, 23, 17)), "WEBP", lossless=True)
    vp8l = vp8l[vp8l.index(b"VP8L"):]

    def chunk(fourcc, data):
        return fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")

    vp8x = chunk(b"VP8X", bytes([0x12, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little"))
    frame = bytes([5, 0, 0, 3, 0, 0]) + (19).to_bytes(3, "little") + (13).to_bytes(3, "little") + bytes([100, 0, 0, 0])
    body = b"WEBP" + vp8x + chunk(b"ANIM", bytes([10, 200, 30, 255, 0, 0])) + chunk(b"ANMF", frame + vp8l)
    f.append(("webp_anim_first_frame_offset.webp", b"RIFF" + struct.pack("<I", len(body)) + body))
    f.append(("gif_saved_as.jpg", saved(photo_rgb, "GIF")))
    f += gif_fixtures(photo_rgb)
    # ICO content: Pillow's own (PNG icons), and BMP icons, the one Pillow picks among several
    f.append(("ico_pil_png_saved_as.jpg", saved(photo_rgb, "ICO", sizes=[(16, 16), (37, 29)])))
    f.append(("ico_pil_bmp.ico", saved(photo_rgb.convert("RGBA"), "ICO", sizes=[(24, 16), (37, 29)],
                                       bitmap_format="bmp")))
    # one size at three depths: Pillow takes the lowest depth (4-bit) of the largest icons
    q16 = photo_rgb.quantize(16)
    pal16 = [tuple(q16.getpalette()[3 * i:3 * i + 3]) for i in range(16)]
    rgba = np.dstack([np.asarray(photo_rgb), np.asarray(photo_rgb.convert("L"))])
    f.append(("ico_pick_lowest_depth.ico", ico_file([(37, 29, 0, 32, ico_dib(rgba, 32)),
                                                     (37, 29, 0, 24, ico_dib(np.asarray(photo_rgb), 24)),
                                                     (37, 29, 16, 4, ico_dib(np.asarray(q16), 4, pal16))])))
    # PFM (grey floats, rows bottom up; Pillow's F -> L clips and truncates, NaN gives 0) and
    # Pillow's own CMYK magic, whatever the name
    grey = np.asarray(photo_rgb.convert("L"))
    fl = (grey.astype(np.float32) * 1.37 - 40.3).astype(np.float32)
    fl[0, :6] = [np.nan, np.inf, -np.inf, -0.0, 254.99998, 255.0]
    f.append(("pfm_grey_le.ppm", b"Pf\n37 29\n-1.0\n" + fl.astype("<f4").tobytes()))
    cmyk = np.asarray(photo_rgb.crop((3, 5, 16, 12)).convert("CMYK")).astype(np.uint32)
    f.append(("pnm_p0cmyk_max1000.ppm", b"P0CMYK\n13 7\n1000\n" + (cmyk * 1000 // 255).astype(">u2").tobytes()))
    try:
        import imagecodecs

        f.append(("jlossless_sof3.jpg", imagecodecs.jpeg8_encode(arr, lossless=True, predictor=1)))
    except (ImportError, TypeError, ValueError):
        print("imagecodecs with lossless JPEG not found: skipping jlossless_sof3.jpg")
    return f


def expectation(path):
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as e:  # what Pillow raises is the expectation
        return {"error": f"{type(e).__name__}: {e}".replace(path, os.path.basename(path))}
    h, w = rgb.shape[:2]
    flat = rgb.reshape(-1, 3)
    idx = [k * (h * w) // N_SAMPLES for k in range(N_SAMPLES)]
    return {
        "width": w,
        "height": h,
        "sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
        "channel_sums": [int(s) for s in flat.astype(np.int64).sum(axis=0)],
        "samples": flat[idx].tobytes().hex(),
    }


def hashes_without_simd(out, names):
    """Pillow's hashes with libjpeg-turbo's SIMD code disabled (JSIMD_FORCENONE=1, read when the
    library loads, hence a subprocess): its C code paths, which our decoder compiles."""
    import subprocess

    code = ("import sys, json, hashlib, numpy as np; from PIL import Image\n"
            "out = {}\n"
            "for p in sys.argv[1:]:\n"
            "    try: out[p] = hashlib.sha256(np.asarray(Image.open(p).convert('RGB')).tobytes()).hexdigest()\n"
            "    except Exception: pass\n"
            "print(json.dumps(out))")
    paths = [os.path.join(out, n) for n in names]
    env = dict(os.environ, JSIMD_FORCENONE="1")
    res = subprocess.run([sys.executable, "-c", code, *paths], env=env, capture_output=True, check=True, text=True)
    return {os.path.basename(p): h for p, h in json.loads(res.stdout).items()}


def val_transform_and_logits(paths, pth):
    import torch
    from torchvision import transforms

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_resnet50_fixture import NarrowResNet50

    model = NarrowResNet50()
    model.load_state_dict(torch.load(pth, weights_only=True))
    model.eval()
    tf = transforms.Compose([transforms.Resize(248), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    out = {}
    for p in paths:
        with Image.open(p) as im:
            x = tf(im.convert("RGB"))
        with torch.no_grad():
            logits = model(x[None])[0]
        xs = x.numpy().astype("<f4")
        out[os.path.basename(p)] = {
            "tensor_sha256": hashlib.sha256(xs.tobytes()).hexdigest(),
            "tensor_sum": float(xs.astype(np.float64).sum()),
            "tensor_first": [float(v) for v in xs.reshape(-1)[:8]],
            "logits": [float(v) for v in logits],
        }
    return out


def ycbcr_to_rgb_all_sha256():
    """Pillow's YCbCr -> RGB of every (Y, Cb, Cr), Y slowest and Cr fastest: the SHA-256 of
    the 2^24 RGB triples."""
    v = np.arange(1 << 24, dtype=np.uint32)
    ycc = np.stack([v >> 16, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    rgb = np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB"))
    return hashlib.sha256(rgb.tobytes()).hexdigest()


def main(out):
    os.makedirs(out, exist_ok=True)
    expected = {}
    for name, data in fixtures():
        p = os.path.join(out, name)
        with open(p, "wb") as fh:
            fh.write(data)
        expected[name] = expectation(p)
    # libjpeg-turbo's SIMD and C paths agree on valid files; where they do not (corrupt data),
    # keep the C path's hash too
    jpegs = [n for n in expected if "sha256" in expected[n] and open(os.path.join(out, n), "rb").read(2) == b"\xff\xd8"]
    same = 0
    for n, h in hashes_without_simd(out, jpegs).items():
        if h == expected[n]["sha256"]:
            same += 1
        else:
            expected[n]["sha256_c"] = h
            print(f"{n}: libjpeg-turbo's SIMD and C paths differ")
    pth = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "fp8q-ptq", "tests", "data",
                       "resnet50_narrow.pth")
    logit_files = ["j420_q90_500x375.jpg", "j420_q75_333x201.jpg", "jprog422_q80_200x133.jpg",
                   "jgray_q80_211x157.jpg", "jcmyk_adobe_q85_173x115.jpg"]
    meta = {
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "webp": features.version("webp"),
        "libtiff": features.version("libtiff"),
        "n_samples": N_SAMPLES,
        "jpeg_simd_equals_c": f"{same} of {len(jpegs)} JPEG fixtures that Pillow decodes",
    }
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump({"meta": meta, "images": expected, "ycbcr_to_rgb_all_sha256": ycbcr_to_rgb_all_sha256(),
                   "val_transform": val_transform_and_logits([os.path.join(out, n) for n in logit_files], pth)},
                  fh, indent=1, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"{len(expected)} fixtures, {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/fp8q-images/tests/data/images")
