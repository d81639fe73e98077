//! Arena alloc+free against the global allocator, in the same run.
//!
//! `cargo bench --bench arena`
//!
//! Group `alloc_free`, per block size: `shmproc_arena` (an `Arena` alloc +
//! free) against `alt_global_allocator` (the process's global allocator).

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use shmproc::Arena;
use std::alloc::{Layout, alloc, dealloc};

fn alloc_free(c: &mut Criterion) {
    let arena = Arena::anonymous(256 << 20).expect("arena");
    let mut group = c.benchmark_group("alloc_free");
    for size in [64usize, 4096, 1 << 20] {
        // Warm the size class so both sides measure the reuse path.
        let warm = arena.alloc(size, 8).unwrap();
        arena.free(warm).unwrap();
        group.bench_with_input(
            BenchmarkId::new("shmproc_arena", size),
            &size,
            |b, &size| {
                b.iter(|| {
                    let at = arena.alloc(black_box(size), 8).unwrap();
                    arena.free(black_box(at)).unwrap();
                })
            },
        );
        let layout = Layout::from_size_align(size, 8).unwrap();
        group.bench_with_input(
            BenchmarkId::new("alt_global_allocator", size),
            &layout,
            |b, &layout| {
                b.iter(|| {
                    // SAFETY: layout has a non-zero size; the block is freed with the same layout.
                    let p = unsafe { alloc(black_box(layout)) };
                    assert!(!p.is_null());
                    // SAFETY: p came from alloc with this layout and is freed once.
                    unsafe { dealloc(black_box(p), layout) };
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, alloc_free);
criterion_main!(benches);
