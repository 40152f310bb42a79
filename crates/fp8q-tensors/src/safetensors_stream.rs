//! Writing a `.safetensors` file one tensor at a time, so that a checkpoint larger than memory
//! can be written while it is produced (`fp8q export`). The header (names, dtypes, shapes, byte
//! offsets) is fixed first from a [`StreamPlan`]; the tensors' bytes then follow in the plan's
//! order, each checked against its declared size.
//!
//! The `safetensors` crate serializes from views of data already in memory (and orders the data
//! by its own rule), so it cannot stream; the file this module writes is the same format (an
//! 8-byte little-endian header length, a JSON header padded with spaces to 8 bytes, the data
//! without holes), and the tests read every file back with the `safetensors` crate.
//!
//! ```
//! use fp8q_tensors::safetensors_stream::{StreamPlan, StreamWriter};
//! let dir = std::env::temp_dir().join(format!("fp8q-stream-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("t.safetensors");
//! let mut plan = StreamPlan::default();
//! plan.push("w", safetensors::Dtype::U8, vec![2, 2]).unwrap();
//! plan.push("s", safetensors::Dtype::F32, vec![1]).unwrap();
//! let mut w = StreamWriter::create(&path, &plan, &Default::default()).unwrap();
//! w.write("w", &[1, 2, 3, 4]).unwrap();
//! w.write("s", &0.5f32.to_le_bytes()).unwrap();
//! w.finish().unwrap();
//! let bytes = std::fs::read(&path).unwrap();
//! let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
//! assert_eq!(st.tensor("w").unwrap().data(), &[1, 2, 3, 4]);
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use safetensors::Dtype;

use crate::error::{Result, TensorError};

/// One tensor of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    /// Its name in the file.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Bytes of data.
    pub bytes: u64,
}

/// The tensors of a file, in the order their data will be written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamPlan {
    tensors: Vec<PlannedTensor>,
}

/// Bytes of `shape` elements of `dtype` (sub-byte types: whole bytes; `None` on overflow).
pub fn byte_size(dtype: Dtype, shape: &[usize]) -> Option<u64> {
    let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64))?;
    n.checked_mul(dtype.bitsize() as u64).map(|bits| bits.div_ceil(8))
}

impl StreamPlan {
    /// Add a tensor (names must be unique).
    pub fn push(&mut self, name: impl Into<String>, dtype: Dtype, shape: Vec<usize>) -> Result<()> {
        let name = name.into();
        let bad = |why: String| TensorError::BadTensorFile {
            path: PathBuf::from(&name),
            why,
        };
        if name == "__metadata__" || name.is_empty() {
            return Err(bad("not a tensor name".into()));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(bad("the name is given twice".into()));
        }
        let bytes = byte_size(dtype, &shape).ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
        self.tensors.push(PlannedTensor {
            name,
            dtype,
            shape,
            bytes,
        });
        Ok(())
    }

    /// The tensors, in order.
    pub fn tensors(&self) -> &[PlannedTensor] {
        &self.tensors
    }

    /// Bytes of data of all tensors.
    pub fn data_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// The JSON header, padded with spaces to a multiple of 8 bytes.
    fn header(&self, metadata: &BTreeMap<String, String>) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        if !metadata.is_empty() {
            map.insert("__metadata__".into(), serde_json::json!(metadata));
        }
        let mut at = 0u64;
        for t in &self.tensors {
            map.insert(
                t.name.clone(),
                serde_json::json!({
                    "dtype": dtype_name(t.dtype),
                    "shape": t.shape,
                    "data_offsets": [at, at + t.bytes],
                }),
            );
            at += t.bytes;
        }
        let mut bytes = serde_json::to_vec(&serde_json::Value::Object(map)).expect("a JSON map serializes");
        while !bytes.len().is_multiple_of(8) {
            bytes.push(b' ');
        }
        bytes
    }
}

/// The header's name of a dtype.
pub fn dtype_name(dtype: Dtype) -> String {
    // the crate's Debug names are the format's names (F32, BF16, F8_E4M3, U8, ...)
    format!("{dtype:?}")
}

/// A file being written from a plan.
pub struct StreamWriter<'p> {
    path: PathBuf,
    plan: &'p StreamPlan,
    next: usize,
    /// Bytes of the next tensor written so far (by [`StreamWriter::write_piece`]).
    written: u64,
    out: BufWriter<std::fs::File>,
}

impl<'p> StreamWriter<'p> {
    /// Create `path` and write the header of `plan` (with `metadata` as `__metadata__`).
    pub fn create(path: &Path, plan: &'p StreamPlan, metadata: &BTreeMap<String, String>) -> Result<Self> {
        let write_err = |err| TensorError::Write {
            path: path.to_path_buf(),
            err,
        };
        let header = plan.header(metadata);
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).map_err(write_err)?);
        out.write_all(&(header.len() as u64).to_le_bytes()).map_err(write_err)?;
        out.write_all(&header).map_err(write_err)?;
        Ok(StreamWriter {
            path: path.to_path_buf(),
            plan,
            next: 0,
            written: 0,
            out,
        })
    }

    /// Write the data of the next tensor of the plan, which must be `name`, with its exact size.
    pub fn write(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let t = self.current(name)?;
        if self.written != 0 || data.len() as u64 != t.bytes {
            return Err(self.bad(format!(
                "'{name}' has {} bytes; the plan says {}",
                self.written + data.len() as u64,
                t.bytes
            )));
        }
        self.put(data, t.bytes)
    }

    /// Write the next piece of the data of the next tensor of the plan, which must be `name`;
    /// the tensor is done when its pieces add up to its size (more is an error).
    pub fn write_piece(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let t = self.current(name)?;
        if self.written + data.len() as u64 > t.bytes {
            return Err(self.bad(format!(
                "'{name}' has {} bytes or more; the plan says {}",
                self.written + data.len() as u64,
                t.bytes
            )));
        }
        self.put(data, t.bytes)
    }

    fn bad(&self, why: String) -> TensorError {
        TensorError::BadTensorFile {
            path: self.path.clone(),
            why,
        }
    }

    /// The next tensor of the plan, which must be `name`.
    fn current(&self, name: &str) -> Result<&'p PlannedTensor> {
        let plan: &'p StreamPlan = self.plan;
        let Some(t) = plan.tensors.get(self.next) else {
            return Err(self.bad(format!("'{name}' is not in the plan (all its tensors are written)")));
        };
        if t.name != name {
            return Err(self.bad(format!("'{name}' written where the plan has '{}'", t.name)));
        }
        Ok(t)
    }

    fn put(&mut self, data: &[u8], size: u64) -> Result<()> {
        self.out.write_all(data).map_err(|err| TensorError::Write {
            path: self.path.clone(),
            err,
        })?;
        self.written += data.len() as u64;
        if self.written == size {
            self.next += 1;
            self.written = 0;
        }
        Ok(())
    }

    /// Check that every tensor was written and flush the file to disk.
    pub fn finish(mut self) -> Result<()> {
        if self.next != self.plan.tensors.len() {
            return Err(TensorError::BadTensorFile {
                path: self.path.clone(),
                why: format!(
                    "{} of {} tensors written (next: '{}', {} of its {} bytes)",
                    self.next,
                    self.plan.tensors.len(),
                    self.plan.tensors[self.next].name,
                    self.written,
                    self.plan.tensors[self.next].bytes
                ),
            });
        }
        let write_err = |err| TensorError::Write {
            path: self.path.clone(),
            err,
        };
        self.out.flush().map_err(write_err)?;
        self.out.get_ref().sync_all().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_read_back_with_the_safetensors_crate() {
        let dir = std::env::temp_dir().join(format!("fp8q-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.safetensors");
        let mut plan = StreamPlan::default();
        plan.push("b.weight", Dtype::F8_E4M3, vec![3, 5]).unwrap();
        plan.push("a.weight_scale", Dtype::F32, vec![3, 1]).unwrap();
        plan.push("c.packed", Dtype::U8, vec![2, 1]).unwrap();
        plan.push("d", Dtype::BF16, vec![0]).unwrap();
        assert_eq!(plan.data_bytes(), 15 + 12 + 2);
        let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
        let mut w = StreamWriter::create(&path, &plan, &meta).unwrap();
        w.write("b.weight", &(0..15).collect::<Vec<u8>>()).unwrap();
        let scales: Vec<u8> = [0.5f32, 1.0, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(w.write("c.packed", &[1, 2]).is_err(), "out of order");
        assert!(w.write("a.weight_scale", &scales[..8]).is_err(), "short");
        w.write("a.weight_scale", &scales).unwrap();
        w.write("c.packed", &[7, 9]).unwrap();
        w.write("d", &[]).unwrap();
        assert!(w.write("e", &[]).is_err());
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(n % 8, 0);
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap()["format"], "pt");
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let b = st.tensor("b.weight").unwrap();
        assert_eq!((b.dtype(), b.shape()), (Dtype::F8_E4M3, &[3usize, 5][..]));
        assert_eq!(b.data(), &(0..15).collect::<Vec<u8>>()[..]);
        assert_eq!(st.tensor("a.weight_scale").unwrap().data(), &scales[..]);
        assert_eq!(st.tensor("c.packed").unwrap().data(), &[7, 9]);
        assert_eq!(st.tensor("d").unwrap().shape(), &[0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tensor_written_in_pieces_reads_back_whole() {
        let dir = std::env::temp_dir().join(format!("fp8q-stream-pieces-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.safetensors");
        let mut plan = StreamPlan::default();
        plan.push("w", Dtype::U8, vec![2, 5]).unwrap();
        plan.push("s", Dtype::U8, vec![1]).unwrap();
        let mut w = StreamWriter::create(&path, &plan, &BTreeMap::new()).unwrap();
        w.write_piece("w", &[0, 1, 2]).unwrap();
        assert!(
            w.write("w", &[3, 4, 5, 6, 7, 8, 9]).is_err(),
            "a whole write after a piece"
        );
        assert!(
            w.write_piece("s", &[1]).is_err(),
            "the next tensor before this one is done"
        );
        assert!(
            w.write_piece("w", &[3, 4, 5, 6, 7, 8, 9, 10]).is_err(),
            "past the tensor's end"
        );
        w.write_piece("w", &[3, 4, 5, 6]).unwrap();
        w.write_piece("w", &[]).unwrap();
        let unfinished = StreamWriter::create(&dir.join("u.safetensors"), &plan, &BTreeMap::new()).unwrap();
        w.write_piece("w", &[7, 8, 9]).unwrap();
        w.write_piece("s", &[42]).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("w").unwrap().data(), &(0..10).collect::<Vec<u8>>()[..]);
        assert_eq!(st.tensor("s").unwrap().data(), &[42]);
        let mut u = unfinished;
        u.write_piece("w", &[1, 2]).unwrap();
        let e = u.finish().unwrap_err().to_string();
        assert!(e.contains("2 of its 10 bytes"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unfinished_files_and_bad_plans_are_errors() {
        let dir = std::env::temp_dir().join(format!("fp8q-stream-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut plan = StreamPlan::default();
        plan.push("x", Dtype::F32, vec![2]).unwrap();
        assert!(plan.push("x", Dtype::F32, vec![2]).is_err());
        assert!(plan.push("__metadata__", Dtype::F32, vec![2]).is_err());
        assert!(plan.push("huge", Dtype::F32, vec![usize::MAX, 4]).is_err());
        let w = StreamWriter::create(&dir.join("x.safetensors"), &plan, &BTreeMap::new()).unwrap();
        assert!(w.finish().is_err());
        assert!(StreamWriter::create(&dir.join("no/such/x.safetensors"), &plan, &BTreeMap::new()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
