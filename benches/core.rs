//! Criterion benches of the core's hot paths: locating one ragged item, locating a 256-item batch, and
//! decoding one string. `cargo bench --bench core`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mmap_ninja::{Dtype, Mode, RaggedStore, StringStore, WriteOptions};

const ITEMS: usize = 100_000;

fn ragged_store(dir: &std::path::Path) -> RaggedStore {
    let shapes: Vec<Vec<u64>> = (0..ITEMS).map(|i| vec![(i % 11 + 1) as u64]).collect();
    let items: Vec<Vec<u8>> = shapes.iter().map(|s| vec![7u8; s[0] as usize * 8]).collect();
    let slices: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    RaggedStore::create(dir, &WriteOptions::default(), Dtype::Int64, &slices, &shapes).unwrap();
    RaggedStore::open(dir, Mode::ReadOnly).unwrap().unwrap()
}

fn indices(n: usize) -> Vec<i64> {
    (0..n as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) % ITEMS as u64) as i64)
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ragged = ragged_store(&dir.path().join("tokens"));
    let random = indices(4096);
    let mut k = 0;
    c.bench_function("ragged_locate", |b| {
        b.iter(|| {
            k = (k + 1) % random.len();
            black_box(ragged.locate(random[k]).unwrap())
        })
    });
    let batch = indices(256);
    c.bench_function("ragged_locate_many_256", |b| {
        b.iter(|| black_box(ragged.locate_many(&batch).unwrap()))
    });

    let strings: Vec<String> = (0..ITEMS).map(|i| format!("string number {i} ü")).collect();
    let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
    StringStore::create(&dir.path().join("strings"), &WriteOptions::default(), &refs, None).unwrap();
    let store = StringStore::open(&dir.path().join("strings")).unwrap().unwrap();
    c.bench_function("string_get", |b| {
        b.iter(|| {
            k = (k + 1) % random.len();
            black_box(store.get(random[k]).unwrap())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
