//! A reader opening a dense store while another thread keeps replacing it sees one generation, whole
//! (or not-found while a replace is under way), never one generation's shape with another's data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmap_ninja::{DenseStore, Dtype, Error, Mode, WriteOptions};

fn generation(k: i64) -> (Vec<u64>, Vec<u8>) {
    let rows = (k % 7 + 1) as usize;
    (
        vec![rows as u64, 3],
        (0..rows * 3).flat_map(|_| k.to_le_bytes()).collect(),
    )
}

#[test]
fn dense_readers_never_mix_generations_of_a_replaced_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let (shape, bytes) = generation(0);
    DenseStore::create(&path, &WriteOptions::default(), Dtype::Int64, &shape, &bytes).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let (shape, bytes) = generation(k);
                DenseStore::create(&path, &WriteOptions::default(), Dtype::Int64, &shape, &bytes).unwrap();
            }
        })
    };
    let (mut opened, mut mixed) = (0, Vec::new());
    let start = Instant::now();
    // A second of opens, and on until 100 have succeeded (a loaded machine may starve this thread) or 60 s.
    while start.elapsed() < Duration::from_secs(1) || (opened <= 100 && start.elapsed() < Duration::from_secs(60)) {
        match DenseStore::open(&path, Mode::ReadOnly) {
            Ok(store) => {
                opened += 1;
                let k = i64::from_le_bytes(store.bytes()[..8].try_into().unwrap());
                if store.shape() != generation(k).0 || store.bytes() != generation(k).1 {
                    mixed.push((store.shape().to_vec(), k));
                }
            }
            Err(Error::Io { ref source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(other) => panic!("{other}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(mixed.is_empty(), "{mixed:?}");
    assert!(opened > 100, "{opened}");
}
