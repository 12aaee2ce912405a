//! Receive-path cost per packet: RTP parse + L24 decode + playout-buffer
//! insert (and release), for 2 ch / 1 ms and 8 ch / 125 µs packets.
//!
//! Run: `cargo bench --bench ingest`. Criterion reports time per packet.

use aes67::media::jitter::{PlayoutBuffer, PlayoutConfig};
use aes67::media::rtp;
use aes67::media::stream::Encoding;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn packets(ch: usize, frames: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|k| {
            let mut b = vec![0u8; 12 + frames * ch * 3];
            rtp::write_header(&mut b, false, 96, k as u16, (k * frames) as u32, 0x1234);
            let s: Vec<i32> = (0..frames * ch)
                .map(|i| ((i * 2654435761 + k) & 0x7fffff) as i32)
                .collect();
            rtp::encode_l24(&s, &mut b[12..]);
            b
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rx_path_per_packet");
    for (name, ch, frames) in [("2ch_1ms", 2usize, 48usize), ("8ch_125us", 8, 6)] {
        let pk = packets(ch, frames, 4096);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::new("parse_decode_insert_release", name),
            &pk,
            |b, pk| {
                let mut jb = PlayoutBuffer::new(PlayoutConfig {
                    channels: ch,
                    encoding: Encoding::L24,
                    payload_type: 96,
                    link_offset_frames: 240,
                    capacity_frames: 1 << 15,
                });
                let mut i = 0usize;
                let mut sink = 0i64;
                b.iter(|| {
                    let p = &pk[i % pk.len()];
                    // Keep timestamps moving forward past the 4096-packet set.
                    let lap = (i / pk.len()) as u32;
                    let mut q = [0u8; 12];
                    q.copy_from_slice(&p[..12]);
                    let ts = u32::from_be_bytes([q[4], q[5], q[6], q[7]])
                        .wrapping_add(lap * (pk.len() * frames) as u32);
                    let mut buf = [0u8; 1500];
                    buf[..p.len()].copy_from_slice(p);
                    buf[4..8].copy_from_slice(&ts.to_be_bytes());
                    jb.insert(&buf[..p.len()]);
                    jb.release(ts.wrapping_add(240), &mut |s| sink += s[0] as i64);
                    i += 1;
                });
                std::hint::black_box(sink);
            },
        );
        g.bench_with_input(BenchmarkId::new("parse_only", name), &pk, |b, pk| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                std::hint::black_box(rtp::RtpPacket::parse(&pk[i % pk.len()]).map(|p| p.timestamp))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
