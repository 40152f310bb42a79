//! Reading and writing named `f32` tensors: `.npy` (f32, f64, f16; C order) and `.safetensors`
//! (F32, F64, F16, BF16; other dtypes are carried through untouched).

use anyhow::{bail, Context, Result};
use std::path::Path;

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
            _ => bail!(
                "{}: unsupported file type (expected .npy or .safetensors)",
                path.display()
            ),
        }
    }
}

/// Read a `.npy` or `.safetensors` file.
pub fn read(path: &Path) -> Result<TensorFile> {
    let kind = Container::from_path(path)?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    match kind {
        Container::Npy => {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("tensor")
                .to_string();
            let t = read_npy(&bytes, name).with_context(|| format!("{}: not a readable .npy file", path.display()))?;
            Ok(TensorFile {
                tensors: vec![t],
                passthrough: vec![],
            })
        }
        Container::Safetensors => {
            read_safetensors(&bytes).with_context(|| format!("{}: not a readable .safetensors file", path.display()))
        }
    }
}

fn read_npy(bytes: &[u8], name: String) -> Result<NamedTensor> {
    let npy = npyz::NpyFile::new(bytes)?;
    if npy.order() == npyz::Order::Fortran && npy.shape().len() > 1 {
        bail!("Fortran-ordered arrays are not supported; save it in C order (np.ascontiguousarray)");
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => bail!("unsupported dtype {other:?}: expected a plain float array"),
    };
    let (data, stored_dtype): (Vec<f32>, &'static str) = match &descr[1..] {
        "f4" => (npy.into_vec::<f32>()?, "f32"),
        "f8" => (npy.into_vec::<f64>()?.into_iter().map(|v| v as f32).collect(), "f64"),
        "f2" => (npy.into_vec::<half::f16>()?.into_iter().map(f32::from).collect(), "f16"),
        _ => bail!("unsupported dtype '{descr}': expected float32, float64 or float16"),
    };
    Ok(NamedTensor {
        name,
        shape,
        data,
        stored_dtype,
    })
}

fn read_safetensors(bytes: &[u8]) -> Result<TensorFile> {
    use safetensors::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes)?;
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
    for (name, _) in names {
        let view = st.tensor(&name)?;
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
    Ok(TensorFile { tensors, passthrough })
}

/// Write tensors as `f32` into the container of `path` (`.npy` takes exactly one tensor).
pub fn write(
    path: &Path,
    tensors: &[NamedTensor],
    passthrough: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)],
) -> Result<()> {
    let kind = Container::from_path(path)?;
    let bytes = match kind {
        Container::Npy => {
            let [t] = tensors else {
                bail!(
                    "{}: a .npy file holds one tensor, but there are {}",
                    path.display(),
                    tensors.len()
                );
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
                    TensorView::new(safetensors::Dtype::F32, t.shape.clone(), r)?,
                ));
            }
            for (name, dtype, shape, r) in passthrough {
                views.push((name.clone(), TensorView::new(*dtype, shape.clone(), r)?));
            }
            safetensors::serialize(views, None)?
        }
    };
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
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
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(out)
}
