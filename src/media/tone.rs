//! A sans-IO sine generator: the one test tone of the crate, used by the
//! engine's in-process ring source (`engine::tone::ToneGenerator`) and its
//! RTP sender (`engine::sender::ToneSender`).
//!
//! The phase is an integer sample index (the phase accumulator), wrapped every
//! `rate × 1000` samples: for any frequency that is a whole number of mHz the
//! wrap falls on a whole number of periods, so the phase stays exact however
//! long the run (no floating-point drift). Samples are `i32` in the range of
//! the stream's encoding (24-bit: ±8 388 607; 16-bit: ±32 767), rounded.
//! No allocation, no IO.

/// Full scale of a `bits`-bit signed sample, e.g. 8 388 607 for 24 bits,
/// 32 767 for 16 bits (`bits` is clamped to 2..=32).
pub fn full_scale(bits: u32) -> f64 {
    ((1u64 << (bits.clamp(2, 32) - 1)) - 1) as f64
}

/// Converts a level in dBFS to a linear fraction of full scale (0 dBFS = 1.0).
pub fn dbfs_to_linear(dbfs: f64) -> f64 {
    10f64.powf(dbfs / 20.0)
}

/// A sine oscillator writing interleaved `i32` frames (the same sample on
/// every channel).
#[derive(Debug, Clone)]
pub struct Sine {
    /// Angular step, radians per sample.
    w: f64,
    /// Peak amplitude in sample units (LSB of the target encoding).
    amp: f64,
    /// Phase accumulator: sample index modulo `wrap`.
    n: u64,
    /// Samples after which the index wraps (`rate × 1000`).
    wrap: u64,
}

impl Sine {
    /// A `freq_hz` Hz sine at `rate` samples/s with peak `amplitude` in sample
    /// units (e.g. `0.5 * full_scale(24)`), starting at phase 0.
    /// A `rate` of 0 is treated as 1.
    pub fn new(rate: u32, freq_hz: f64, amplitude: f64) -> Sine {
        let rate = rate.max(1);
        Sine {
            w: 2.0 * std::f64::consts::PI * freq_hz / rate as f64,
            amp: amplitude,
            n: 0,
            wrap: rate as u64 * 1000,
        }
    }

    /// A sine whose peak is `level` (a fraction of full scale, 0..=1) of a
    /// `bits`-bit sample (24 for L24, 16 for L16).
    pub fn with_level(rate: u32, freq_hz: f64, level: f64, bits: u32) -> Sine {
        Sine::new(rate, freq_hz, level * full_scale(bits))
    }

    /// The next sample (rounded to the nearest integer) and advances the phase
    /// by one sample.
    pub fn next_sample(&mut self) -> i32 {
        let v = (self.amp * (self.w * self.n as f64).sin()).round() as i32;
        self.n = (self.n + 1) % self.wrap;
        v
    }

    /// Fills `out` with whole interleaved frames of `channels` channels (a
    /// trailing partial frame is left untouched); returns the frames written.
    /// `channels` 0 writes nothing.
    pub fn fill(&mut self, out: &mut [i32], channels: usize) -> usize {
        if channels == 0 {
            return 0;
        }
        let mut frames = 0;
        for frame in out.chunks_exact_mut(channels) {
            frame.fill(self.next_sample());
            frames += 1;
        }
        frames
    }

    /// Skips `frames` samples of phase (e.g. frames dropped by a full ring).
    pub fn skip(&mut self, frames: u64) {
        self.n = ((self.n as u128 + frames as u128) % self.wrap as u128) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_and_shape() {
        assert_eq!(full_scale(24), 8_388_607.0);
        assert_eq!(full_scale(16), 32_767.0);
        // 12 kHz at 48 kHz: 0, +A, 0, -A.
        let mut s = Sine::with_level(48_000, 12_000.0, 1.0, 16);
        let mut out = [0i32; 9];
        assert_eq!(s.fill(&mut out, 2), 4);
        assert_eq!(out, [0, 0, 32_767, 32_767, 0, 0, -32_767, -32_767, 0]);
    }

    #[test]
    fn phase_stays_exact_over_the_wrap() {
        let mut a = Sine::new(48_000, 1000.0, 1000.0);
        a.skip(48_000 * 1000 * 7 + 5);
        let mut b = Sine::new(48_000, 1000.0, 1000.0);
        b.skip(5);
        for _ in 0..100 {
            assert_eq!(a.next_sample(), b.next_sample());
        }
        assert!((dbfs_to_linear(-20.0) - 0.1).abs() < 1e-12);
    }
}
