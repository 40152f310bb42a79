//! Reading and writing named `f32` tensors: `.npy` (f32, f64, f16; C order) and `.safetensors`
//! (F32, F64, F16, BF16; other dtypes are carried through untouched).
//!
//! `.npy` files are read by a small parser of their header dict (`descr`, `fortran_order`,
//! `shape`) that never recurses and checks the header length and the data size against the
//! bytes present before allocating; `npyz` is used for writing only. `.safetensors` headers are
//! validated by the `safetensors` crate.

use std::path::Path;

use crate::error::{Result, TensorError};

/// What is wrong with a file's bytes, before the file's name is attached.
type Why<T> = std::result::Result<T, String>;

/// Return early with a formatted reason.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(format!($($arg)*))
    };
}

/// A [`TensorError::BadTensorFile`].
fn bad(path: &Path, why: impl Into<String>) -> TensorError {
    TensorError::BadTensorFile {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// A tensor read from a file, converted to `f32`.
#[derive(Debug, Clone)]
pub struct NamedTensor {
    /// Name (the file stem for `.npy`).
    pub name: String,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
    /// The dtype it was stored with (`f32`, `f64`, `f16`, `bf16`).
    pub stored_dtype: &'static str,
}

/// What a file holds: float tensors to process, and (safetensors only) others to keep as they are.
#[derive(Debug)]
pub struct TensorFile {
    /// Float tensors, in file order.
    pub tensors: Vec<NamedTensor>,
    /// Non-float tensors of a safetensors file: (name, dtype, shape, raw bytes).
    pub passthrough: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    /// The safetensors header's `__metadata__` (empty for `.npy`).
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// File container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// NumPy `.npy`.
    Npy,
    /// `.safetensors`.
    Safetensors,
}

impl Container {
    /// Decide by the file extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("npy") => Ok(Container::Npy),
            Some("safetensors") => Ok(Container::Safetensors),
            _ => Err(bad(path, "unsupported file type (expected .npy or .safetensors)")),
        }
    }
}

/// Read a `.npy` or `.safetensors` file.
pub fn read(path: &Path) -> Result<TensorFile> {
    let kind = Container::from_path(path)?;
    let bytes = std::fs::read(path).map_err(|err| TensorError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    match kind {
        Container::Npy => {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("tensor")
                .to_string();
            let mut file =
                npy_from_bytes(&bytes).map_err(|why| bad(path, format!("not a readable .npy file: {why}")))?;
            file.tensors[0].name = name;
            Ok(file)
        }
        Container::Safetensors => {
            safetensors_from_bytes(&bytes).map_err(|why| bad(path, format!("not a readable .safetensors file: {why}")))
        }
    }
}

/// The header of a `.npy` file: its dtype string, order, shape and where the data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
    data_start: usize,
}

/// One token of the header's Python dict literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Punct(char),
    Str(String),
    Word(String),
    Int(u64),
}

/// Reads the header text one token at a time (nothing is collected, nothing recurses).
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn token(&mut self) -> Why<Option<Token>> {
        let rest = &self.text[self.pos..];
        let Some((skip, c)) = rest.char_indices().find(|(_, c)| !c.is_whitespace()) else {
            self.pos = self.text.len();
            return Ok(None);
        };
        let start = self.pos + skip;
        let body = &self.text[start..];
        let (token, len) = match c {
            '{' | '}' | ':' | ',' | '(' | ')' | '[' | ']' => (Token::Punct(c), 1),
            '\'' | '"' => {
                let end = body[1..]
                    .find(c)
                    .ok_or_else(|| "unterminated string in the header".to_string())?;
                (Token::Str(body[1..1 + end].to_string()), end + 2)
            }
            c if c.is_ascii_digit() => {
                let digits = body.find(|d: char| !d.is_ascii_digit()).unwrap_or(body.len());
                let v: u64 = body[..digits]
                    .parse()
                    .map_err(|_| "a number in the header is too large".to_string())?;
                // a Python 2 long: 3L
                let len = if body[digits..].starts_with('L') {
                    digits + 1
                } else {
                    digits
                };
                (Token::Int(v), len)
            }
            c if c.is_ascii_alphabetic() => {
                let len = body
                    .find(|d: char| !(d.is_ascii_alphanumeric() || d == '_'))
                    .unwrap_or(body.len());
                (Token::Word(body[..len].to_string()), len)
            }
            other => bail!("unexpected character {other:?} in the header"),
        };
        self.pos = start + len;
        Ok(Some(token))
    }
}

/// Parse the header: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_npy_header(bytes: &[u8]) -> Why<NpyHeader> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        bail!("no .npy magic (\\x93NUMPY)");
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("unsupported .npy version {v}.{}", bytes[7]),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format!("header of {len} bytes runs past the end of the file"))?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text".to_string())?;
    let mut t = Lexer { text, pos: 0 };
    match t.token()? {
        Some(Token::Punct('{')) => {}
        other => bail!("expected '{{' in the header, found {other:?}"),
    }
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        let key = match t.token()? {
            Some(Token::Punct('}')) => break,
            Some(Token::Str(k)) => k,
            other => bail!("expected a key in the header, found {other:?}"),
        };
        match t.token()? {
            Some(Token::Punct(':')) => {}
            other => bail!("expected ':' after '{key}', found {other:?}"),
        }
        match (key.as_str(), t.token()?) {
            ("descr", Some(Token::Str(d))) => descr = Some(d),
            ("descr", Some(Token::Punct('['))) => bail!("structured dtypes are not supported"),
            ("fortran_order", Some(Token::Word(w))) if w == "True" || w == "False" => fortran_order = Some(w == "True"),
            ("shape", Some(Token::Punct('('))) => {
                let mut dims = Vec::new();
                loop {
                    match t.token()? {
                        Some(Token::Punct(')')) => break,
                        Some(Token::Int(v)) => dims.push(v),
                        other => bail!("bad shape in the header: found {other:?}"),
                    }
                    match t.token()? {
                        Some(Token::Punct(')')) => break,
                        Some(Token::Punct(',')) => {}
                        other => bail!("bad shape in the header: found {other:?}"),
                    }
                }
                shape = Some(dims);
            }
            (k, v) => bail!("unexpected header entry '{k}': {v:?}"),
        }
        match t.token()? {
            Some(Token::Punct(',')) => {}
            Some(Token::Punct('}')) => break,
            other => bail!("expected ',' or '}}' in the header, found {other:?}"),
        }
    }
    Ok(NpyHeader {
        descr: descr.ok_or_else(|| "the header has no 'descr'".to_string())?,
        fortran_order: fortran_order.ok_or_else(|| "the header has no 'fortran_order'".to_string())?,
        shape: shape.ok_or_else(|| "the header has no 'shape'".to_string())?,
        data_start: end,
    })
}

/// Read a `.npy` file of f32, f64 or f16 (either byte order; C order, or Fortran order for
/// one dimension). Every length is checked against the bytes present before allocating.
fn read_npy(bytes: &[u8], name: String) -> Why<NamedTensor> {
    let h = parse_npy_header(bytes)?;
    if h.fortran_order && h.shape.len() > 1 {
        bail!("Fortran-ordered arrays are not supported; save it in C order (np.ascontiguousarray)");
    }
    let d = h.descr.as_str();
    let (big_endian, kind) = match d.as_bytes().first() {
        Some(b'<' | b'|' | b'=') => (false, &d[1..]),
        Some(b'>') => (true, &d[1..]),
        _ => (false, d),
    };
    let (size, stored_dtype): (usize, &'static str) = match kind {
        "f4" => (4, "f32"),
        "f8" => (8, "f64"),
        "f2" => (2, "f16"),
        _ => bail!("unsupported dtype '{d}': expected float32, float64 or float16"),
    };
    let numel = h
        .shape
        .iter()
        .try_fold(1u64, |a, &b| a.checked_mul(b))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("shape {:?} has too many elements", h.shape))?;
    let data = &bytes[h.data_start..];
    let need = numel.checked_mul(size).filter(|&n| n <= data.len()).ok_or_else(|| {
        format!(
            "shape {:?} of '{d}' needs {numel} elements of {size} bytes, the file holds {} bytes of data",
            h.shape,
            data.len()
        )
    })?;
    let element = |b: &[u8]| -> [u8; 8] {
        let mut le = [0u8; 8];
        le[..size].copy_from_slice(b);
        if big_endian {
            le[..size].reverse();
        }
        le
    };
    let data: Vec<f32> = data[..need]
        .chunks_exact(size)
        .map(|b| {
            let e = element(b);
            match size {
                4 => f32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                8 => f64::from_le_bytes(e) as f32,
                _ => half::f16::from_le_bytes([e[0], e[1]]).to_f32(),
            }
        })
        .collect();
    Ok(NamedTensor {
        name,
        shape: h.shape.iter().map(|&v| v as usize).collect(),
        data,
        stored_dtype,
    })
}

/// Read the bytes of a `.npy` file (the tensor is named `tensor`).
pub fn npy_from_bytes(bytes: &[u8]) -> Why<TensorFile> {
    Ok(TensorFile {
        tensors: vec![read_npy(bytes, "tensor".into())?],
        passthrough: vec![],
        metadata: Default::default(),
    })
}

/// Read the bytes of a `.safetensors` file.
pub fn safetensors_from_bytes(bytes: &[u8]) -> Why<TensorFile> {
    use safetensors::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut names: Vec<(String, usize)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let offset = v.data().as_ptr() as usize - bytes.as_ptr() as usize;
            (n, offset)
        })
        .collect();
    names.sort_by_key(|(_, off)| *off); // file order
    let mut tensors = Vec::new();
    let mut passthrough = Vec::new();
    // low-precision weights (codes and scales) are read back as f32 weights, in the place of
    // their first part
    let (weights, consumed) = crate::checkpoint::low_precision::from_views(&st.tensors())?;
    // each weight goes where its first stored part was
    let mut weights: Vec<Option<crate::checkpoint::low_precision::Dequantized>> =
        weights.into_iter().map(Some).collect();
    let owner: std::collections::BTreeMap<String, usize> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, d)| d.iter().flat_map(|d| d.parts.iter()).map(move |p| (p.clone(), i)))
        .collect();
    for (name, _) in names {
        if let Some(d) = owner.get(&name).and_then(|&i| weights[i].take()) {
            tensors.push(NamedTensor {
                name: d.name,
                shape: d.shape,
                data: d.values,
                stored_dtype: d.layout,
            });
            continue;
        }
        if consumed.contains(&name) {
            continue;
        }
        let view = st.tensor(&name).map_err(|e| e.to_string())?;
        let raw = view.data();
        let shape = view.shape().to_vec();
        let (data, stored_dtype): (Vec<f32>, &'static str) = match view.dtype() {
            Dtype::F32 => (
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                "f32",
            ),
            Dtype::F64 => (
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                "f64",
            ),
            Dtype::F16 => (
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                "f16",
            ),
            Dtype::BF16 => (
                raw.chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                "bf16",
            ),
            other => {
                passthrough.push((name, other, shape, raw.to_vec()));
                continue;
            }
        };
        tensors.push(NamedTensor {
            name,
            shape,
            data,
            stored_dtype,
        });
    }
    let metadata = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| e.to_string())?
        .1
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    Ok(TensorFile {
        tensors,
        passthrough,
        metadata,
    })
}

/// Write tensors as `f32` into the container of `path` (`.npy` takes exactly one tensor).
pub fn write(
    path: &Path,
    tensors: &[NamedTensor],
    passthrough: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)],
) -> Result<()> {
    write_with_metadata(path, tensors, passthrough, &Default::default())
}

/// [`write`] with a safetensors `__metadata__` (refused for `.npy`, which has none).
pub fn write_with_metadata(
    path: &Path,
    tensors: &[NamedTensor],
    passthrough: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)],
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let kind = Container::from_path(path)?;
    let bytes = match kind {
        Container::Npy if !metadata.is_empty() => {
            return Err(bad(path, "a .npy file has no metadata: write a .safetensors file"));
        }
        Container::Npy => {
            let [t] = tensors else {
                return Err(bad(
                    path,
                    format!("a .npy file holds one tensor, but there are {}", tensors.len()),
                ));
            };
            npy_bytes(&t.shape, &t.data)?
        }
        Container::Safetensors => {
            use safetensors::tensor::TensorView;
            let raw: Vec<Vec<u8>> = tensors
                .iter()
                .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
                .collect();
            let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
            for (t, r) in tensors.iter().zip(&raw) {
                views.push((
                    t.name.clone(),
                    TensorView::new(safetensors::Dtype::F32, t.shape.clone(), r)
                        .map_err(|e| bad(path, e.to_string()))?,
                ));
            }
            for (name, dtype, shape, r) in passthrough {
                views.push((
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), r).map_err(|e| bad(path, format!("{name}: {e}")))?,
                ));
            }
            let metadata = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
            safetensors::serialize(views, metadata).map_err(|e| bad(path, e.to_string()))?
        }
    };
    std::fs::write(path, bytes).map_err(|err| TensorError::Write {
        path: path.to_path_buf(),
        err,
    })
}

/// An `.npy` file's bytes for an `f32` array.
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    use npyz::WriterBuilder;
    let mut out = Vec::new();
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .map_err(|e| TensorError::invalid("npy", e.to_string()))?;
    w.extend(data.iter().copied())
        .and_then(|()| w.finish())
        .map_err(|e| TensorError::invalid("npy", e.to_string()))?;
    Ok(out)
}
