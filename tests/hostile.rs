//! Property tests of the format parser and of opening damaged stores: whatever the bytes, the core returns a
//! value or an error, never panics, and every item it hands out lies inside the data it mapped.
//! `PROPTEST_CASES=20000 cargo test --test hostile` runs longer.

use std::fs;
use std::path::{Path, PathBuf};

use mmap_ninja::{format, sharded, Dtype, Manifest, Mode, RaggedStore, StringStore, WriteOptions};
use proptest::prelude::*;

proptest! {
    #[test]
    fn shape_and_name_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(shape) = format::parse_shape(&bytes) {
            prop_assert_eq!(shape.len() * 8, bytes.len());
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = (Dtype::parse(&text), format::Order::parse(&text), format::StoreKind::parse(&text));
    }

    #[test]
    fn manifests_parse_to_names_inside_the_store_or_errors(
        lines in proptest::collection::vec("(shard|kind|generation)? ?[a-z0-9./_ -]{0,24}", 0..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("mmap_ninja sharded 1\nkind ragged\ngeneration g\n{}", lines.join("\n"));
        fs::write(dir.path().join(format::SHARDS_FILE), text).unwrap();
        if let Ok(manifest) = Manifest::read(dir.path()) {
            for shard in manifest.shards() {
                prop_assert!(sharded::valid_shard_name(&shard.name) && !shard.name.contains(['/', ' ']));
                prop_assert!(!shard.name.starts_with('.'));
            }
            for i in 0..manifest.len().min(50) {
                let (k, local) = manifest.locate(i as i64).unwrap();
                prop_assert!(local < manifest.shards()[k].items);
            }
        }
    }

    #[test]
    fn damaged_stores_open_to_values_or_errors(
        kind in 0usize..3,
        file_pick in any::<prop::sample::Index>(),
        damage in damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("store");
        build(&d, kind);
        let files = list_files(&d);
        apply(&files[file_pick.index(files.len())], &damage);
        read_everything(&d, kind);
    }
}

/// One damage to one file.
#[derive(Debug, Clone)]
enum Damage {
    FlipBit(usize, u8),
    Truncate(usize),
    /// An int64 written over the 8 bytes at an 8-byte slot.
    Int(usize, i64),
    Replace(Vec<u8>),
    Remove,
}

fn damage() -> impl Strategy<Value = Damage> {
    let ints = prop_oneof![
        Just(0i64),
        Just(-1),
        Just(1),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(1 << 32),
        any::<i64>()
    ];
    let texts = prop_oneof![
        Just(b"object".to_vec()),
        Just(b"<U8".to_vec()),
        Just(b"ragged".to_vec()),
        Just(vec![0xff; 3]),
        proptest::collection::vec(any::<u8>(), 0..24),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::FlipBit(at, bit)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), ints).prop_map(|(at, v)| Damage::Int(at, v)),
        texts.prop_map(Damage::Replace),
        Just(Damage::Remove),
    ]
}

fn build(d: &Path, kind: usize) {
    let options = WriteOptions::default();
    let items: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 4 * usize::from(i % 3 + 1) * 2]).collect();
    let slices: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    match kind {
        0 => {
            let shapes: Vec<Vec<u64>> = items.iter().map(|b| vec![b.len() as u64 / 4]).collect();
            RaggedStore::create(d, &options, Dtype::Int32, &slices, &shapes).unwrap();
        }
        1 => {
            let shapes: Vec<Vec<u64>> = items.iter().map(|b| vec![2, b.len() as u64 / 8]).collect();
            RaggedStore::create(d, &options, Dtype::Int32, &slices, &shapes).unwrap();
        }
        _ => StringStore::create(d, &options, &["a", "", "bé", "long string", "x"], None).unwrap(),
    }
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(list_files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn apply(file: &Path, damage: &Damage) {
    let mut bytes = fs::read(file).unwrap();
    match damage {
        Damage::Remove => return fs::remove_file(file).unwrap(),
        Damage::FlipBit(at, bit) if !bytes.is_empty() => {
            let n = bytes.len();
            bytes[at % n] ^= 1 << bit;
        }
        Damage::Truncate(len) => bytes.truncate(len % (bytes.len() + 1)),
        Damage::Int(at, value) if bytes.len() >= 8 => {
            let slot = at % (bytes.len() / 8) * 8;
            bytes[slot..slot + 8].copy_from_slice(&value.to_le_bytes());
        }
        Damage::Replace(new) => bytes = new.clone(),
        _ => {}
    }
    fs::write(file, bytes).unwrap();
}

/// Opens the store and reads every item; errors are fine, panics fail the test (proptest catches them).
fn read_everything(d: &Path, kind: usize) {
    if kind == 2 {
        if let Ok(Some(store)) = StringStore::open(d) {
            let _ = store.verify(usize::MAX);
            for i in 0..store.len() as i64 {
                let _ = store.get(i);
            }
        }
        return;
    }
    let Ok(Some(store)) = RaggedStore::open(d, Mode::ReadOnly) else {
        return;
    };
    let _ = store.verify(usize::MAX);
    let mapped = store.region().len() as u64;
    let itemsize = store.dtype().itemsize() as u64;
    let indices: Vec<i64> = (0..store.len() as i64).collect();
    for &i in &indices {
        if let Ok(item) = store.locate(i) {
            assert!(
                item.start <= item.end && item.end * itemsize <= mapped,
                "item {i} outside the mapping"
            );
        }
    }
    if let Ok(items) = store.locate_many(&indices) {
        if let Ok(len) = store.gather_len(&items) {
            let mut out = vec![0u8; len];
            store.gather(items, &mut out).unwrap();
        }
    }
}
