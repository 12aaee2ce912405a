//! A counting global allocator for the "never allocates" tests of real-time
//! code: it forwards every call to the system allocator and counts the
//! calls made on threads marked with [`mark_thread`] (the playout thread's
//! `rt_hooks`, or the test thread around one call).
//!
//! Each test binary declares its own:
//!
//! ```ignore
//! #[global_allocator]
//! static A: aes67_rig::alloc::CountingAlloc = aes67_rig::alloc::CountingAlloc::new();
//! ```
// GlobalAlloc is an unsafe trait: this module is the rig's only unsafe code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is marked (false while its thread-locals are
/// being torn down).
fn marked() -> bool {
    MARKED.try_with(|m| m.get()).unwrap_or(false)
}

/// Counts allocations on the calling thread from now on (a `fn()`, usable as
/// a playout `rt_hooks` start hook).
pub fn mark_thread() {
    MARKED.with(|m| m.set(true));
}

/// Stops counting on the calling thread.
pub fn unmark_thread() {
    MARKED.with(|m| m.set(false));
}

/// The system allocator, counting `alloc`/`alloc_zeroed`, `realloc` and
/// `dealloc` calls made on marked threads.
#[derive(Debug)]
pub struct CountingAlloc {
    allocs: AtomicU64,
    reallocs: AtomicU64,
    deallocs: AtomicU64,
}

impl CountingAlloc {
    /// All counters at zero.
    pub const fn new() -> CountingAlloc {
        CountingAlloc {
            allocs: AtomicU64::new(0),
            reallocs: AtomicU64::new(0),
            deallocs: AtomicU64::new(0),
        }
    }

    /// `alloc` and `alloc_zeroed` calls on marked threads.
    pub fn allocs(&self) -> u64 {
        self.allocs.load(Ordering::Relaxed)
    }

    /// `realloc` calls on marked threads.
    pub fn reallocs(&self) -> u64 {
        self.reallocs.load(Ordering::Relaxed)
    }

    /// `dealloc` calls on marked threads.
    pub fn deallocs(&self) -> u64 {
        self.deallocs.load(Ordering::Relaxed)
    }

    /// Allocations of new memory: `allocs() + reallocs()`.
    pub fn allocations(&self) -> u64 {
        self.allocs() + self.reallocs()
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        self.allocs.store(0, Ordering::Relaxed);
        self.reallocs.store(0, Ordering::Relaxed);
        self.deallocs.store(0, Ordering::Relaxed);
    }

    /// Proves the counter works before a test relies on it (a check that cannot fail
    /// would prove nothing): one allocation on a marked thread must count as exactly
    /// one. Panics otherwise (is this the `#[global_allocator]`?), then resets.
    pub fn self_test(&self) {
        std::thread::spawn(|| {
            mark_thread();
            let v: Vec<u8> = Vec::with_capacity(10);
            drop(std::hint::black_box(v));
            unmark_thread();
        })
        .join()
        .expect("the allocation self-test thread");
        assert_eq!(
            self.allocations(),
            1,
            "the counting allocator missed a marked allocation: is it the #[global_allocator]?"
        );
        self.reset();
    }

    fn count(&self, c: &AtomicU64) {
        if marked() {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        CountingAlloc::new()
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the GlobalAlloc contract; counting touches only atomics and a
// const-initialised thread-local Cell (no allocation, no re-entry).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.count(&self.allocs);
        // SAFETY: the caller's contract for `alloc` (non-zero-size `l`) is passed on.
        unsafe { System.alloc(l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.count(&self.allocs);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        self.count(&self.reallocs);
        // SAFETY: `p` was allocated by `System` (every allocation goes
        // through this type) with layout `l`; the caller's contract for `n`.
        unsafe { System.realloc(p, l, n) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        self.count(&self.deallocs);
        // SAFETY: `p` was allocated by `System` with layout `l`, as above.
        unsafe { System.dealloc(p, l) }
    }
}
