//! The core reads the golden stores that mmap-ninja 0.9.0 wrote (tests/fixtures/golden), and writes
//! byte-identical files for the same content.

use std::path::{Path, PathBuf};

use mmap_ninja::{DenseStore, Dtype, Mode, RaggedStore, StringStore, WriteOptions};

fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(case)
}

fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn assert_same_tree(expected: &Path, actual: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(expected)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut actual_names: Vec<_> = std::fs::read_dir(actual)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    actual_names.sort();
    assert_eq!(names, actual_names, "{}", expected.display());
    for name in names {
        let (e, a) = (expected.join(&name), actual.join(&name));
        if e.is_dir() {
            assert_same_tree(&e, &a);
        } else {
            assert_eq!(
                std::fs::read(&e).unwrap(),
                std::fs::read(&a).unwrap(),
                "{}",
                e.display()
            );
        }
    }
}

#[test]
fn reads_reference_dense_store() {
    let store = DenseStore::open(&golden("numpy_1d"), Mode::ReadOnly).unwrap();
    assert_eq!(store.dtype(), Dtype::Int64);
    assert_eq!(store.shape(), [10]);
    assert_eq!(store.bytes(), i64_bytes(&(0..10).collect::<Vec<_>>()));
}

#[test]
fn reads_reference_ragged_stores() {
    let flat = RaggedStore::open(&golden("ragged_flat"), Mode::ReadOnly)
        .unwrap()
        .unwrap();
    assert!(flat.is_flat());
    let spans: Vec<_> = (0..5)
        .map(|i| flat.locate(i).unwrap())
        .map(|it| (it.start, it.end, it.shape))
        .collect();
    assert_eq!(
        spans,
        [
            (0, 4, vec![4]),
            (4, 5, vec![1]),
            (5, 5, vec![0]),
            (5, 12, vec![7]),
            (12, 14, vec![2])
        ]
    );
    let mixed = RaggedStore::open(&golden("ragged_mixed_ndim"), Mode::ReadOnly)
        .unwrap()
        .unwrap();
    let shapes: Vec<_> = (0..4).map(|i| mixed.locate(i).unwrap().shape).collect();
    assert_eq!(shapes, [vec![2, 3], vec![4], vec![1, 2], vec![3, 1]]);
    let scalars = RaggedStore::open(&golden("ragged_scalars"), Mode::ReadOnly)
        .unwrap()
        .unwrap();
    assert_eq!(scalars.locate(4).unwrap().shape, Vec::<u64>::new());
}

#[test]
fn reads_reference_string_stores_including_zstd_dictionary() {
    let basic = StringStore::open(&golden("strings_unicode")).unwrap().unwrap();
    assert_eq!(basic.get(0).unwrap(), "日本語");
    let zstd = StringStore::open(&golden("strings_zstd_dict")).unwrap().unwrap();
    assert!(zstd.is_compressed());
    assert_eq!(zstd.get(0).unwrap(), format!("{:<100}", "Torba sample 0"));
    assert_eq!(zstd.len(), 120);
}

#[test]
fn writes_the_same_bytes_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ragged_mixed_ndim");
    let items = [
        i64_bytes(&[1, 2, 3, 4, 5, 6]),
        i64_bytes(&[7, 8, 9, 10]),
        i64_bytes(&[11, 12]),
        i64_bytes(&[13, 14, 15]),
    ];
    let slices: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let shapes = [vec![2, 3], vec![4], vec![1, 2], vec![3, 1]];
    RaggedStore::create(&out, &WriteOptions::default(), Dtype::Int64, &slices, &shapes).unwrap();
    assert_same_tree(&golden("ragged_mixed_ndim"), &out);

    let out = dir.path().join("strings_basic");
    StringStore::create(
        &out,
        &WriteOptions::default(),
        &["Torba", "", "Boiler", "a", "zele pitka", "", "popo"],
        None,
    )
    .unwrap();
    assert_same_tree(&golden("strings_basic"), &out);

    let out = dir.path().join("numpy_1d");
    DenseStore::create(
        &out,
        &WriteOptions::default(),
        Dtype::Int64,
        &[10],
        &i64_bytes(&(0..10).collect::<Vec<_>>()),
    )
    .unwrap();
    assert_same_tree(&golden("numpy_1d"), &out);
}
