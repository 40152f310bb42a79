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

    /// A float tensor's values as `f32` (exact for f16 and bf16).
    pub fn f32(&self, name: &str) -> Result<Vec<f32>> {
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
        if let Where::Loaded = e.where_ {
            return Ok(self.pth[name].0.clone());
        }
        let b = self.bytes(e, name)?;
        let size = e.dtype.bitsize() / 8;
        let convert = |c: &[u8]| -> f32 {
            match e.dtype {
                Dtype::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                Dtype::F64 => f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32,
                Dtype::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
                Dtype::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
                _ => unreachable!("float dtypes only"),
            }
        };
        let mut out = vec![0f32; b.len() / size];
        out.par_chunks_mut(1 << 16)
            .zip(b.par_chunks(size << 16))
            .for_each(|(o, c)| {
                o.iter_mut()
                    .zip(c.chunks_exact(size))
                    .for_each(|(o, c)| *o = convert(c))
            });
        Ok(out)
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
