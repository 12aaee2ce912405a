//! The playing-stream STREAMPROC path (`steer::Steer::pull`: rate controller
//! and resampler, both steering modes) never allocates after creation: a
//! counting global allocator, armed on this thread only around each pull.
// A counting global allocator (GlobalAlloc is an unsafe trait).
#![allow(unsafe_code)]
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use aes67::units::{MonoNs, Ppb};
use bass_aes67::steer::{FrameSource, Steer};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local!(static ARMED: Cell<bool> = const { Cell::new(false) });

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ARMED.try_with(|a| a.get()).unwrap_or(false) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from System.alloc with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ARMED.try_with(|a| a.get()).unwrap_or(false) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for realloc's contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

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
    ALLOCS.store(0, Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let v = std::hint::black_box(vec![1u8; 64]);
    ARMED.with(|a| a.set(false));
    drop(v);
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed),
        1,
        "counting allocator inert"
    );
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
        ALLOCS.store(0, Ordering::Relaxed);
        // BASS-like: every 100 ms (virtual), 4800 frames arrive and ~4801 are pulled.
        for k in 0..secs * 10 {
            src.tail = ((k + 3) * 4800 * 2).min(src.buf.len());
            let now = MonoNs(1_000_000_000 + k as u64 * 100_000_000);
            ARMED.with(|a| a.set(true));
            st.pull(&mut src, &mut out, now, Some(Ppb(1000.0)));
            ARMED.with(|a| a.set(false));
        }
        let c = st.counters();
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed),
            0,
            "allocations in pull (freq mode {freq})"
        );
        assert_eq!(c.underruns, 0, "freq mode {freq}: {c:?}");
    }
}
