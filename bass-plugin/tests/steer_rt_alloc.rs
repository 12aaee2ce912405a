//! The playing-stream STREAMPROC path (`steer::Steer::pull`: rate controller
//! and resampler, both steering modes) never allocates after creation: a
//! counting global allocator, armed on this thread only around each pull.

use aes67::units::{MonoNs, Ppb};
use aes67_rig::alloc::{CountingAlloc, mark_thread, unmark_thread};
use bass_aes67::steer::{FrameSource, Steer};

#[global_allocator]
static A: CountingAlloc = CountingAlloc::new();

/// A preallocated ring of samples (no allocation when read).
struct Src {
    buf: Vec<f32>,
    head: usize,
    tail: usize,
}
impl FrameSource for Src {
    fn available(&self) -> usize {
        self.tail - self.head
    }
    fn read(&mut self, out: &mut [f32]) {
        out.copy_from_slice(&self.buf[self.head..self.head + out.len()]);
        self.head += out.len();
    }
    fn skip(&mut self, n: usize) {
        self.head += n.min(self.available());
    }
}

#[test]
fn pull_never_allocates() {
    // The counter sees allocations on this thread when armed (self-check).
    A.reset();
    mark_thread();
    let v = std::hint::black_box(vec![1u8; 64]);
    unmark_thread();
    drop(v);
    assert_eq!(A.allocations(), 1, "counting allocator inert");
    for freq in [false, true] {
        let mut st = if freq {
            Steer::new_freq(2, 48_000, 40).unwrap()
        } else {
            Steer::new(2, 48_000, 40).unwrap()
        };
        let secs = 120usize;
        let mut src = Src {
            buf: (0..48_000 * 2 * (secs + 2))
                .map(|i| ((i as f32) * 0.001).sin() * 0.5)
                .collect(),
            head: 0,
            tail: 0,
        };
        let mut out = vec![0f32; 2 * 4800];
        A.reset();
        // BASS-like: every 100 ms (virtual), 4800 frames arrive and ~4801 are pulled.
        for k in 0..secs * 10 {
            src.tail = ((k + 3) * 4800 * 2).min(src.buf.len());
            let now = MonoNs::from_ns(1_000_000_000 + k as u64 * 100_000_000);
            mark_thread();
            st.pull(&mut src, &mut out, now, Some(Ppb::from_ppb(1000.0)));
            unmark_thread();
        }
        let c = st.counters();
        assert_eq!(A.allocations(), 0, "allocations in pull (freq mode {freq})");
        assert_eq!(c.underruns, 0, "freq mode {freq}: {c:?}");
    }
}
