//! CPU cost of the steered resampler (`aes67::rate::resampler`), per channel.
//!
//! Each group is one channel count; each benchmark resamples one 480-frame device
//! period (10 ms at 48 kHz) at ratio 1 + 100 ppm. Throughput is in samples
//! (frames × channels), so criterion's elements/s divided by 48000 gives the
//! channels one core sustains in real time. The peer, measured in the same run, is
//! rubato's polynomial (cubic, no anti-alias filter) `Async` resampler: the
//! cheapest interpolator, against which the sinc cost is read as a ratio.
//!
//! Run: `cargo bench --bench resample`.

use aes67::rate::resampler::{Quality, SteeredResampler};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Adjustable, Async, FixedAsync, PolynomialDegree, Resampler};
use std::hint::black_box;
use std::time::Duration;

const CHUNK: usize = 480;

fn bench(c: &mut Criterion) {
    for &ch in &[1usize, 2, 8, 64] {
        let mut g = c.benchmark_group(format!("resample_{ch}ch"));
        g.throughput(Throughput::Elements((CHUNK * ch) as u64));
        g.measurement_time(Duration::from_secs(3));
        g.warm_up_time(Duration::from_millis(500));
        g.sample_size(20);
        for (name, q) in [
            ("sinc_high", Quality::High),
            ("sinc_medium", Quality::Medium),
            ("sinc_fast", Quality::Fast),
        ] {
            let mut r = SteeredResampler::new(ch, CHUNK, q).unwrap();
            r.set_ratio(1.0 + 100e-6).unwrap();
            let input: Vec<f32> = (0..r.input_frames_max() * ch)
                .map(|i| ((i as f32) * 0.01).sin() * 0.5)
                .collect();
            let mut out = vec![0.0f32; CHUNK * ch];
            g.bench_function(BenchmarkId::new(name, ch), |b| {
                b.iter(|| black_box(r.process_f32(black_box(&input), &mut out).unwrap()))
            });
        }
        let mut p = Async::<f32>::new_poly(
            1.0,
            1.01,
            PolynomialDegree::Cubic,
            CHUNK,
            ch,
            FixedAsync::Output,
        )
        .unwrap();
        p.set_resample_ratio(1.0 + 100e-6, false).unwrap();
        let input: Vec<f32> = (0..p.input_frames_max() * ch)
            .map(|i| ((i as f32) * 0.01).sin() * 0.5)
            .collect();
        let mut out = vec![0.0f32; CHUNK * ch];
        g.bench_function(BenchmarkId::new("peer_rubato_poly_cubic", ch), |b| {
            b.iter(|| {
                let need = p.input_frames_next();
                let a = InterleavedSlice::new(&input[..need * ch], ch, need).unwrap();
                let mut o = InterleavedSlice::new_mut(&mut out[..], ch, CHUNK).unwrap();
                black_box(p.process_into_buffer(&a, &mut o, None).unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
