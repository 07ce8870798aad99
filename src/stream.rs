//! Copies of large batches with non-temporal ("streaming") stores, which write whole cache lines straight
//! to memory: the destination is not read in first and does not push the source out of the caches. For a
//! batch far larger than the caches that is a third less memory traffic: 256 scattered images of about 600 KB
//! (157 MB), gathered on 2 threads, took 11.2 ms with `memcpy` and 7.3 ms with these stores (the same hour on
//! the 2-core AMD EPYC VM of `benches/compare.py`). A batch that fits in the caches, which the caller then
//! reads from them, is faster with `memcpy`, and so are small items (each streamed copy ends with a fence
//! and leaves partial cache lines at its ends): callers stream only batches of at least `STREAM_BATCH_BYTES`,
//! and within them only items of at least `STREAM_ITEM_BYTES`.
//!
//! This module holds the core's second `unsafe` site (the first is in `mmap`): the SSE2 load and store
//! intrinsics take raw pointers. SSE2 is part of every x86-64 target that is not built without it, so there
//! is nothing to detect at run time; elsewhere the copy is a plain `copy_from_slice`.

/// Batches of at least this many bytes may stream. A heuristic: about the size of a server's last-level cache,
/// shared by all its cores (32 MiB on the VM the figures come from).
pub(crate) const STREAM_BATCH_BYTES: usize = 16 << 20;
/// Items of at least this many bytes stream (within such a batch); smaller ones are copied with `memcpy`.
pub(crate) const STREAM_ITEM_BYTES: usize = 64 << 10;

/// Copies `src` into `dst` (of the same length) with streaming stores where the target has them, fenced so
/// that they are ordered before anything else this thread does (such as signalling that it is done).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};

    assert_eq!(dst.len(), src.len(), "streaming copy of unequal lengths");
    // Plain copies for the unaligned head and the tail; 16-byte chunks streamed in between.
    let head = dst.as_ptr().align_offset(16).min(dst.len());
    let (dst_head, dst_rest) = dst.split_at_mut(head);
    let (src_head, src_rest) = src.split_at(head);
    dst_head.copy_from_slice(src_head);
    let mut dst_chunks = dst_rest.chunks_exact_mut(16);
    let mut src_chunks = src_rest.chunks_exact(16);
    // SAFETY: the intrinsics need SSE2 (and SSE for the fence), which the `cfg` above guarantees. `from` and
    // `out` are live slices of exactly 16 bytes (`chunks_exact`), distinct because `dst` is borrowed `&mut`
    // and `src` `&`, so both pointers are valid for a 16-byte access; `_mm_loadu_si128` takes any alignment,
    // and `out` is 16-byte aligned as `_mm_stream_si128` requires, because `dst_rest` starts at
    // `align_offset(16)` (capped at the length, which also covers `align_offset` giving up with `usize::MAX`:
    // then nothing streams) and every chunk is 16 bytes. The bytes are plain data with no validity invariant.
    // Streaming stores are weakly ordered: the thread that made them must fence before anything else touches
    // that memory, so `_mm_sfence` runs right after the loop, before this function returns (and so before a
    // scoped thread running it can be joined). What would break it: chunks of another size, dropping the
    // split at `head`, or a return between the loop and the fence.
    unsafe {
        for (out, from) in (&mut dst_chunks).zip(&mut src_chunks) {
            _mm_stream_si128(
                out.as_mut_ptr().cast::<__m128i>(),
                _mm_loadu_si128(from.as_ptr().cast()),
            );
        }
        _mm_sfence();
    }
    dst_chunks.into_remainder().copy_from_slice(src_chunks.remainder());
}

/// Copies `src` into `dst` (of the same length).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_byte_at_every_alignment_and_length() {
        let src: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut dst = vec![0u8; 4096 + 64];
        for dst_at in 0..17 {
            for src_at in [0, 1, 5, 16] {
                for len in (0..200).chain([1023, 1024, 1025, 4000]) {
                    dst.fill(0xAA);
                    copy(&mut dst[dst_at..dst_at + len], &src[src_at..src_at + len]);
                    assert_eq!(
                        &dst[dst_at..dst_at + len],
                        &src[src_at..src_at + len],
                        "{dst_at} {src_at} {len}"
                    );
                    assert!(dst[..dst_at].iter().all(|&b| b == 0xAA), "wrote before the start");
                    assert!(dst[dst_at + len..].iter().all(|&b| b == 0xAA), "wrote past the end");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "unequal lengths")]
    fn refuses_unequal_lengths() {
        copy(&mut [0u8; 8], &[0u8; 9]);
    }
}
