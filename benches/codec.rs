//! How messages that are not plain-old-data become bytes: postcard (what
//! shmproc uses) against bincode 2 in its two configurations, encode plus
//! decode of a typical small message, in one run. The floor is copying the
//! same number of bytes (a plain-old-data message travels as a copy).

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use shmproc::Message;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    symbol: String,
    price: f64,
    quantities: Vec<u32>,
    note: Option<String>,
}
shmproc::serde_message!(Order);

fn order() -> Order {
    Order {
        id: 1_234_567,
        symbol: "ACME".into(),
        price: 101.25,
        quantities: (1..=8).map(|i| i * 100).collect(),
        note: Some("fill or kill".into()),
    }
}

fn bench(c: &mut Criterion) {
    let order = order();
    let mut postcard_bytes = Vec::new();
    order.encode(&mut postcard_bytes).unwrap();

    let mut group = c.benchmark_group("codec_order");
    group.throughput(Throughput::Elements(1));

    let mut out = Vec::with_capacity(256);
    group.bench_function("floor_memcpy_same_bytes", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&postcard_bytes));
            black_box(&out);
        })
    });

    group.bench_function("shmproc_postcard", |b| {
        b.iter(|| {
            out.clear();
            black_box(&order).encode(&mut out).unwrap();
            black_box(Order::decode(black_box(&out)).unwrap())
        })
    });

    let standard = bincode::config::standard();
    group.bench_function("alt_bincode_standard", |b| {
        b.iter(|| {
            out.clear();
            bincode::serde::encode_into_std_write(black_box(&order), &mut out, standard).unwrap();
            let (decoded, _): (Order, usize) =
                bincode::serde::decode_from_slice(black_box(&out), standard).unwrap();
            black_box(decoded)
        })
    });

    let legacy = bincode::config::legacy();
    group.bench_function("alt_bincode_fixint", |b| {
        b.iter(|| {
            out.clear();
            bincode::serde::encode_into_std_write(black_box(&order), &mut out, legacy).unwrap();
            let (decoded, _): (Order, usize) =
                bincode::serde::decode_from_slice(black_box(&out), legacy).unwrap();
            black_box(decoded)
        })
    });
    group.finish();

    let mut sizes = Vec::new();
    bincode::serde::encode_into_std_write(&order, &mut sizes, standard).unwrap();
    let standard_len = sizes.len();
    sizes.clear();
    bincode::serde::encode_into_std_write(&order, &mut sizes, legacy).unwrap();
    eprintln!(
        "codec_order frame sizes: postcard {} B, bincode standard {} B, bincode fixint {} B",
        postcard_bytes.len(),
        standard_len,
        sizes.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
