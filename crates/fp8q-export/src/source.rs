//! The checkpoint an export reads: a `.safetensors` file, a sharded one (its
//! `model.safetensors.index.json`), a folder holding either, or a PyTorch `.pth`.
//!
//! safetensors files are memory-mapped: a tensor's bytes are read when it is exported, one
//! tensor at a time, so the input is read once and never held whole. A `.pth` is read whole by
//! `fp8q-tensors`' checkpoint reader (it executes nothing), then exported tensor by tensor.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fp8q_tensors::checkpoint::storage::Dtype as PthDtype;
use fp8q_tensors::checkpoint::Checkpoint;
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::Dtype;

use crate::error::{file_error, ExportError, Result};

/// A tensor of the input: where it is and what it holds.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Element type (a `.pth` tensor's, as safetensors names it).
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    where_: Where,
}

#[derive(Debug, Clone)]
enum Where {
    /// File index and byte range in it.
    Mapped(usize, std::ops::Range<usize>),
    /// Key of the loaded `.pth`.
    Loaded,
}

/// An opened input checkpoint.
pub struct Source {
    /// What was opened (for messages).
    pub path: PathBuf,
    /// The folder of the model (where a `config.json` may be).
    pub folder: Option<PathBuf>,
    maps: Vec<(PathBuf, Mmap)>,
    /// A `.pth`'s tensors: values (every dtype read as `f32`, exactly for the float types) and
    /// the dtype stored.
    pth: BTreeMap<String, (Vec<f32>, PthDtype)>,
    entries: BTreeMap<String, Entry>,
}

fn st_dtype(d: PthDtype) -> Dtype {
    match d {
        PthDtype::F32 => Dtype::F32,
        PthDtype::F64 => Dtype::F64,
        PthDtype::F16 => Dtype::F16,
        PthDtype::BF16 => Dtype::BF16,
        PthDtype::I64 => Dtype::I64,
        PthDtype::I32 => Dtype::I32,
        PthDtype::I16 => Dtype::I16,
        PthDtype::I8 => Dtype::I8,
        PthDtype::U8 => Dtype::U8,
        PthDtype::Bool => Dtype::BOOL,
    }
}

/// Whether values of this dtype can be quantized.
pub fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16)
}

/// Little-endian float bytes of `dtype` to `f32` (exact for f16 and bf16).
fn convert(dtype: Dtype, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        Dtype::F32 => out
            .iter_mut()
            .zip(bytes.chunks_exact(4))
            .for_each(|(o, c)| *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        Dtype::F64 => out
            .iter_mut()
            .zip(bytes.chunks_exact(8))
            .for_each(|(o, c)| *o = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32),
        Dtype::F16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, c)| *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
        // bf16 is the top half of an f32
        Dtype::BF16 => match bytemuck::try_cast_slice::<u8, u16>(bytes) {
            Ok(halves) if cfg!(target_endian = "little") => out
                .iter_mut()
                .zip(halves)
                .for_each(|(o, &h)| *o = f32::from_bits(u32::from(h) << 16)),
            _ => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, c)| *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)),
        },
        _ => unreachable!("float dtypes only"),
    }
}

impl Source {
    /// Open `path`: a `.safetensors` file, a `*.safetensors.index.json`, a folder with
    /// `model.safetensors` or `model.safetensors.index.json`, or a `.pth`.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            for name in ["model.safetensors.index.json", "model.safetensors"] {
                let p = path.join(name);
                if p.is_file() {
                    let mut s = Self::open(&p)?;
                    s.folder = Some(path.to_path_buf());
                    return Ok(s);
                }
            }
            return Err(file_error(
                path,
                "a folder without model.safetensors or model.safetensors.index.json",
            ));
        }
        let folder = path.parent().map(Path::to_path_buf);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".index.json") {
            return Self::open_index(path, folder);
        }
        let mut head = [0u8; 16];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
            let n = f
                .read(&mut head)
                .map_err(|e| file_error(path, format!("cannot read: {e}")))?;
            if fp8q_tensors::checkpoint::safetensors::sniff(&head[..n]) {
                let mut s = Source::empty(path, folder);
                s.map_file(path)?;
                return Ok(s);
            }
        }
        Self::open_pth(path, folder)
    }

    fn empty(path: &Path, folder: Option<PathBuf>) -> Self {
        Source {
            path: path.to_path_buf(),
            folder,
            maps: Vec::new(),
            pth: BTreeMap::new(),
            entries: BTreeMap::new(),
        }
    }

    fn map_file(&mut self, path: &Path) -> Result<()> {
        let file = std::fs::File::open(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        // SAFETY: the map is read only; a file changed by another process while it is exported
        // gives wrong values, never undefined behaviour in safe code reading bytes.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| file_error(path, format!("cannot map: {e}")))?;
        let (header_len, meta) = safetensors::SafeTensors::read_metadata(&map[..])
            .map_err(|e| file_error(path, format!("not a valid safetensors file: {e}")))?;
        let start = 8 + header_len;
        let idx = self.maps.len();
        for (name, info) in meta.tensors() {
            let (a, b) = info.data_offsets;
            if self.entries.contains_key(&name) {
                return Err(file_error(path, format!("tensor '{name}' appears in two shards")));
            }
            self.entries.insert(
                name,
                Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    where_: Where::Mapped(idx, start + a..start + b),
                },
            );
        }
        self.maps.push((path.to_path_buf(), map));
        Ok(())
    }

    fn open_index(path: &Path, folder: Option<PathBuf>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| file_error(path, format!("invalid JSON: {e}")))?;
        let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
            return Err(file_error(path, "a safetensors index needs a \"weight_map\" object"));
        };
        let mut files: Vec<String> = Vec::new();
        for (k, v) in map {
            let Some(f) = v.as_str() else {
                return Err(file_error(path, format!("weight_map['{k}'] is not a file name")));
            };
            if Path::new(f).components().count() != 1 {
                return Err(file_error(
                    path,
                    format!("weight_map['{k}'] = '{f}' is not a file beside the index"),
                ));
            }
            if !files.iter().any(|g| g == f) {
                files.push(f.to_string());
            }
        }
        let dir = folder.clone().unwrap_or_default();
        let mut s = Source::empty(path, folder);
        for f in &files {
            s.map_file(&dir.join(f))?;
        }
        for k in map.keys() {
            if !s.entries.contains_key(k) {
                return Err(file_error(
                    path,
                    format!("'{k}' is in weight_map but in none of its files"),
                ));
            }
        }
        Ok(s)
    }

    fn open_pth(path: &Path, folder: Option<PathBuf>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        let typed = Checkpoint::from_bytes_typed(&bytes)
            .map_err(|why| ExportError::Tensors(fp8q_tensors::TensorError::bad_checkpoint(path, why)))?;
        let mut s = Source::empty(path, folder);
        for (name, (t, d)) in typed {
            let shape = t.dims().to_vec();
            let values = t
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(|e| file_error(path, format!("tensor '{name}': {e}")))?;
            s.entries.insert(
                name.clone(),
                Entry {
                    dtype: st_dtype(d),
                    shape,
                    where_: Where::Loaded,
                },
            );
            s.pth.insert(name, (values, d));
        }
        Ok(s)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// A tensor's entry.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Bytes of the input files (0 for a `.pth`, read whole).
    pub fn mapped_bytes(&self) -> u64 {
        self.maps.iter().map(|(_, m)| m.len() as u64).sum()
    }

    fn bytes(&self, e: &Entry, name: &str) -> Result<&[u8]> {
        let Where::Mapped(i, r) = &e.where_ else {
            unreachable!("a mapped entry")
        };
        let (p, map) = &self.maps[*i];
        map.get(r.clone())
            .ok_or_else(|| file_error(p, format!("tensor '{name}' lies outside the file")))
    }

    /// Values `start..start + out.len()` of a float tensor (row-major), as `f32` (exact for f16
    /// and bf16): a piece of a tensor, read from the map without reading the rest.
    pub fn read_f32(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| ExportError::Invalid(format!("no tensor '{name}'")))?;
        if !is_float(e.dtype) {
            return Err(ExportError::Tensor {
                name: name.to_string(),
                why: format!("is {:?}, not a floating-point tensor; it cannot be quantized", e.dtype),
            });
        }
        let outside = || ExportError::Tensor {
            name: name.to_string(),
            why: format!("values {start}..{} read past its end", start + out.len()),
        };
        if let Where::Loaded = e.where_ {
            let v = &self.pth[name].0;
            out.copy_from_slice(v.get(start..start + out.len()).ok_or_else(outside)?);
            return Ok(());
        }
        let size = e.dtype.bitsize() / 8;
        let b = self.bytes(e, name)?;
        let b = b.get(start * size..(start + out.len()) * size).ok_or_else(outside)?;
        let dtype = e.dtype;
        out.par_chunks_mut(1 << 16)
            .zip(b.par_chunks(size << 16))
            .for_each(|(o, c)| convert(dtype, c, o));
        Ok(())
    }

    /// The largest magnitude of a float tensor, from its stored bits (for the finite values of
    /// an IEEE format, a larger magnitude is a larger pattern once the sign is cleared); an
    /// error naming the tensor if it holds NaN or ±Inf.
    pub fn abs_max(&self, name: &str) -> Result<f32> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| ExportError::Invalid(format!("no tensor '{name}'")))?;
        let nonfinite = || ExportError::Tensor {
            name: name.to_string(),
            why: "holds NaN or infinite values; they have no quantized code".into(),
        };
        let max_bits = |words: &[u16]| -> u16 {
            words
                .par_chunks(1 << 16)
                .map(|c| c.iter().fold(0u16, |m, &w| m.max(w & 0x7fff)))
                .max()
                .unwrap_or(0)
        };
        let amax = match (&e.where_, e.dtype) {
            (Where::Loaded, _) => {
                let v = &self.pth[name].0;
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(nonfinite());
                }
                v.iter().fold(0f32, |m, x| m.max(x.abs()))
            }
            (_, Dtype::BF16 | Dtype::F16) => {
                let b = self.bytes(e, name)?;
                let words: Vec<u16>;
                let words: &[u16] = match bytemuck::try_cast_slice::<u8, u16>(b) {
                    Ok(w) if cfg!(target_endian = "little") => w,
                    _ => {
                        words = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                        &words
                    }
                };
                let m = max_bits(words);
                if e.dtype == Dtype::BF16 {
                    if m >= 0x7f80 {
                        return Err(nonfinite());
                    }
                    f32::from_bits(u32::from(m) << 16)
                } else {
                    if m >= 0x7c00 {
                        return Err(nonfinite());
                    }
                    half::f16::from_bits(m).to_f32()
                }
            }
            _ => {
                // f32 and f64: through the converted values, a piece at a time
                let n: usize = e.shape.iter().product();
                let mut buf = vec![0f32; n.min(1 << 20)];
                let mut amax = 0f32;
                for at in (0..n).step_by(1 << 20) {
                    let len = (1 << 20).min(n - at);
                    self.read_f32(name, at, &mut buf[..len])?;
                    let m = buf[..len]
                        .par_chunks(1 << 16)
                        .map(|c| c.iter().fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff)))
                        .max()
                        .unwrap_or(0);
                    if m >= 0x7f80_0000 {
                        return Err(nonfinite());
                    }
                    amax = amax.max(f32::from_bits(m));
                }
                amax
            }
        };
        Ok(amax)
    }

    /// Let go of a tensor's mapped pages once it is written: the process stops holding them (the
    /// operating system's file cache may keep them), so memory stays bounded by the tensor being
    /// exported, not the input.
    pub fn release(&self, name: &str) {
        let Some(Entry {
            where_: Where::Mapped(i, r),
            ..
        }) = self.entries.get(name)
        else {
            return;
        };
        let map = &self.maps[*i].1;
        // SAFETY: the map is a read-only, private file mapping and no slice of these pages is
        // alive (the caller has written the tensor): MADV_DONTNEED only drops the pages from this
        // process, and a later read faults them in again from the file with the same bytes.
        // Failure is harmless (the pages stay mapped).
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, r.start, r.len()) };
    }

    /// A tensor's bytes as stored (to copy it unchanged).
    pub fn raw(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| ExportError::Invalid(format!("no tensor '{name}'")))?;
        if let Where::Mapped(..) = e.where_ {
            return self.bytes(e, name).map(Cow::Borrowed);
        }
        let (v, d) = &self.pth[name];
        let out: Vec<u8> = match d {
            PthDtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            PthDtype::F64 => v.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect(),
            PthDtype::F16 => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
            PthDtype::BF16 => v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
            PthDtype::I64 => v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect(),
            PthDtype::I32 => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
            PthDtype::I16 => v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect(),
            PthDtype::I8 => v.iter().map(|&x| (x as i8) as u8).collect(),
            PthDtype::U8 | PthDtype::Bool => v.iter().map(|&x| x as u8).collect(),
        };
        Ok(Cow::Owned(out))
    }
}
