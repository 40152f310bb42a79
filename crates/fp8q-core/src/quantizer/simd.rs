//! Runtime CPU-feature dispatch for the element-wise kernels.
//!
//! Kernels are written once as plain scalar loops marked `#[inline(always)]`; the macro below
//! compiles each of them three times (AVX-512, AVX2+FMA, baseline) and picks one at run time,
//! so the auto-vectorizer can use the widest registers the machine has without `-C target-cpu`.

/// Defines `$vis fn $name(args) -> R` that dispatches to `$generic(args)` compiled for the best
/// available instruction set.
macro_rules! dispatch_by_cpu {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? => $generic:path;) => {
        $(#[$meta])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
                fn avx512($($a: $t),*) $(-> $r)? { $generic($($a),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($a: $t),*) $(-> $r)? { $generic($($a),*) }
                if $crate::quantizer::simd::has_avx512() {
                    // SAFETY: the CPU supports every feature `avx512` was compiled for.
                    return unsafe { avx512($($a),*) };
                }
                if $crate::quantizer::simd::has_avx2() {
                    // SAFETY: the CPU supports every feature `avx2` was compiled for.
                    return unsafe { avx2($($a),*) };
                }
            }
            $generic($($a),*)
        }
    };
}
pub(crate) use dispatch_by_cpu;

/// Whether the AVX-512 path can run (cached by std).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && has_avx2()
}

/// Whether the AVX2+FMA path can run.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Elements per parallel work item for tensor-wide kernels.
pub(crate) const PAR_CHUNK: usize = 1 << 16;
