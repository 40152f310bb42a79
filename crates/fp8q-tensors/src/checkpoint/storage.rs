//! Element types of stored tensors and copying a (possibly strided) view out of raw storage
//! bytes into a contiguous `f32` vector, with every index and size checked.

/// The element type of a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `float32`.
    F32,
    /// `float64`.
    F64,
    /// `float16` (IEEE binary16).
    F16,
    /// `bfloat16`.
    BF16,
    /// `int64`.
    I64,
    /// `int32`.
    I32,
    /// `int16`.
    I16,
    /// `int8`.
    I8,
    /// `uint8`.
    U8,
    /// `bool` (one byte, 0 or 1).
    Bool,
}

impl Dtype {
    /// From a legacy storage class name (`FloatStorage`, `torch.cuda.HalfStorage`'s name, …).
    pub fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        })
    }

    /// From a `torch.<dtype>` name (`float32`, `half`, …).
    pub fn from_torch_name(name: &str) -> Option<Self> {
        Some(match name {
            "float32" | "float" => Dtype::F32,
            "float64" | "double" => Dtype::F64,
            "float16" | "half" => Dtype::F16,
            "bfloat16" => Dtype::BF16,
            "int64" | "long" => Dtype::I64,
            "int32" | "int" => Dtype::I32,
            "int16" | "short" => Dtype::I16,
            "int8" => Dtype::I8,
            "uint8" => Dtype::U8,
            "bool" => Dtype::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    /// One little-endian element (exactly [`Dtype::size`] bytes) as `f32`, rounded to nearest.
    pub fn decode(self, b: &[u8]) -> f32 {
        match self {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            Dtype::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            Dtype::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            Dtype::I64 => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            Dtype::I8 => b[0] as i8 as f32,
            Dtype::U8 | Dtype::Bool => b[0] as f32,
        }
    }
}

/// IEEE binary16 → f32, exact. A NaN keeps its sign and payload and becomes quiet, as IEEE 754
/// asks and as PyTorch's `.float()` does (F16C `vcvtph2ps`).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let man = h & 0x3ff;
    match exp {
        0 => sign * man as f32 * 2f32.powi(-24),
        31 if man == 0 => sign * f32::INFINITY,
        31 => f32::from_bits(((h as u32 & 0x8000) << 16) | 0x7fc0_0000 | ((man as u32) << 13)),
        e => sign * (1.0 + man as f32 / 1024.0) * 2f32.powi(e - 15),
    }
}

/// A tensor's place in a storage: element offset, sizes and strides (in elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// First element.
    pub offset: u64,
    /// Size of each dimension.
    pub size: Vec<u64>,
    /// Stride of each dimension.
    pub stride: Vec<u64>,
}

/// A limit on the number of elements all tensors of one file may decode to.
///
/// Every stored element takes at least one byte of the file, so real checkpoints stay far
/// below it; only stride-0 (expanded) tensors can hold more elements than their storage, and
/// a hostile shape with zero strides could otherwise ask for any amount of memory.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    left: u64,
}

impl Budget {
    /// Headroom beyond the file size for expanded tensors: 16 Mi elements (64 MiB as `f32`).
    pub const SLACK: u64 = 1 << 24;

    /// The budget of a file of `file_len` bytes.
    pub fn for_file(file_len: usize) -> Self {
        Budget {
            left: file_len as u64 + Self::SLACK,
        }
    }

    /// Take `n` elements, or explain why not.
    pub fn take(&mut self, n: u64) -> Result<(), String> {
        if n > self.left {
            return Err(format!(
                "{n} elements exceed what this file can describe (at most {} more)",
                self.left
            ));
        }
        self.left -= n;
        Ok(())
    }
}

/// Number of elements of `size`, or an error on overflow.
pub fn numel(size: &[u64]) -> Result<u64, String> {
    size.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {size:?} has too many elements"))
}

/// An empty tensor's other sizes can be anything, but its contiguous strides (products of the
/// sizes after each dimension, which the tensor library computes without overflow checks) must
/// be representable: the product of the non-zero sizes must fit `isize`, as for any real tensor.
pub fn check_empty_shape<T: Copy + Into<u64> + std::fmt::Debug>(size: &[T]) -> Result<(), String> {
    size.iter()
        .map(|&d| d.into())
        .filter(|&d| d != 0)
        .try_fold(1u64, |a, d| a.checked_mul(d))
        .filter(|&p| p <= isize::MAX as u64)
        .map(|_| ())
        .ok_or_else(|| format!("shape {size:?} is too large"))
}

/// Copy `view` of `bytes` (a storage of `bytes.len() / dtype.size()` elements) into a contiguous
/// row-major `f32` vector. Every index is checked against the storage before anything is read,
/// and the output is charged to `budget` before it is allocated.
pub fn gather(view: &View, dtype: Dtype, bytes: &[u8], budget: &mut Budget) -> Result<Vec<f32>, String> {
    if view.size.len() != view.stride.len() {
        return Err(format!(
            "size {:?} and stride {:?} differ in rank",
            view.size, view.stride
        ));
    }
    let elem = dtype.size();
    let storage_numel = (bytes.len() / elem) as u64;
    let n = numel(&view.size)?;
    check_empty_shape(&view.size)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut last = view.offset;
    for (&s, &st) in view.size.iter().zip(&view.stride) {
        last = (s - 1)
            .checked_mul(st)
            .and_then(|v| v.checked_add(last))
            .ok_or("view index overflows")?;
    }
    if last >= storage_numel {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) reaches element {last} of a storage of {storage_numel}",
            view.offset, view.size, view.stride
        ));
    }
    budget.take(n)?;
    // All indices are < storage_numel ≤ usize::MAX / elem from here on.
    let mut out = Vec::with_capacity(n as usize);
    let rank = view.size.len();
    let mut idx = vec![0u64; rank];
    let mut pos = view.offset as usize;
    for _ in 0..n {
        out.push(dtype.decode(&bytes[pos * elem..(pos + 1) * elem]));
        // Advance the multi-index (last dimension fastest) and the storage position with it.
        for d in (0..rank).rev() {
            idx[d] += 1;
            pos += view.stride[d] as usize;
            if idx[d] < view.size[d] {
                break;
            }
            pos -= (view.size[d] * view.stride[d]) as usize;
            idx[d] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn half_decoding() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        // NaNs keep sign and payload, signalling ones become quiet (torch's bits)
        for (h, f) in [
            (0x7e00u16, 0x7fc0_0000u32),
            (0xfe00, 0xffc0_0000),
            (0x7c01, 0x7fc0_2000),
            (0xfd55, 0xffea_a000),
            (0x7fff, 0x7fff_e000),
        ] {
            assert_eq!(f16_to_f32(h).to_bits(), f, "{h:#x}");
        }
        // every non-NaN half agrees with the half crate's conversion
        for h in 0..=u16::MAX {
            if h & 0x7c00 != 0x7c00 || h & 0x3ff == 0 {
                assert_eq!(
                    f16_to_f32(h).to_bits(),
                    half::f16::from_bits(h).to_f32().to_bits(),
                    "{h:#x}"
                );
            }
        }
    }

    #[test]
    fn strided_views() {
        let bytes = floats(&[0., 1., 2., 3., 4., 5.]);
        let mut b = Budget::for_file(0);
        let t = View {
            offset: 0,
            size: vec![3, 2],
            stride: vec![1, 3],
        };
        assert_eq!(
            gather(&t, Dtype::F32, &bytes, &mut b).unwrap(),
            vec![0., 3., 1., 4., 2., 5.]
        );
        let s = View {
            offset: 1,
            size: vec![2, 2],
            stride: vec![3, 1],
        };
        assert_eq!(gather(&s, Dtype::F32, &bytes, &mut b).unwrap(), vec![1., 2., 4., 5.]);
        let e = View {
            offset: 2,
            size: vec![2, 3],
            stride: vec![0, 0],
        };
        assert_eq!(gather(&e, Dtype::F32, &bytes, &mut b).unwrap(), vec![2.; 6]);
        let scalar = View {
            offset: 5,
            size: vec![],
            stride: vec![],
        };
        assert_eq!(gather(&scalar, Dtype::F32, &bytes, &mut b).unwrap(), vec![5.]);
        let empty = View {
            offset: 99,
            size: vec![0, 4],
            stride: vec![4, 1],
        };
        assert!(gather(&empty, Dtype::F32, &bytes, &mut b).unwrap().is_empty());
    }

    #[test]
    fn bad_views_are_errors() {
        let bytes = floats(&[0., 1., 2., 3., 4., 5.]);
        let mut b = Budget::for_file(0);
        for (offset, size, stride) in [
            (1, vec![3, 2], vec![1, 3]),
            (6, vec![], vec![]),
            (0, vec![2], vec![1, 1]),
            (0, vec![u64::MAX, 2], vec![1, 1]),
            (0, vec![2, 2], vec![u64::MAX / 2, 1]),
            (u64::MAX, vec![1], vec![1]),
            (0, vec![1 << 40, 1 << 40], vec![0, 0]),
            (0, vec![0, 1 << 40, 1 << 40], vec![1, 1, 1]),
            (0, vec![1 << 40, 1 << 40, 0], vec![1, 1, 1]),
            (0, vec![u64::MAX, 0], vec![1, 1]),
        ] {
            let v = View { offset, size, stride };
            assert!(gather(&v, Dtype::F32, &bytes, &mut b).is_err(), "{v:?}");
        }
        // the budget stops zero-stride expansions
        let mut small = Budget { left: 10 };
        let v = View {
            offset: 0,
            size: vec![11],
            stride: vec![0],
        };
        assert!(gather(&v, Dtype::F32, &bytes, &mut small).is_err());
    }
}
