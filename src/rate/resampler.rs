//! A continuously steered band-limited resampler: a thin wrapper around rubato's
//! asynchronous sinc resampler (`rubato::Async::new_sinc`, rubato 5) with fixed
//! output chunks (one device period), interleaved `f32` or `i32` samples in and out,
//! 1-64 channels, and every buffer allocated up front.
//!
//! The ratio is output/input frames (device frames per media frame), `1 + ppm·1e-6`,
//! as produced by [`crate::rate::RateControl`]. It may move within ±1 % of 1.
//! `process_*` never allocates (rubato's `process_into_buffer` with preallocated
//! adapters), so it is safe on the real-time thread.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction,
};

/// Most channels a [`SteeredResampler`] accepts.
pub const MAX_CHANNELS: usize = 64;
/// How far the ratio may move from 1 (relative): ±1 %.
pub const MAX_RELATIVE: f64 = 1.01;

/// Errors of the resampler wrapper.
#[derive(Debug, thiserror::Error)]
pub enum ResamplerError {
    /// `channels` was 0 or above [`MAX_CHANNELS`].
    #[error("channels must be 1..={MAX_CHANNELS}, got {0}")]
    Channels(usize),
    /// rubato refused the construction parameters.
    #[error("resampler construction: {0}")]
    Construction(#[from] rubato::ResamplerConstructionError),
    /// rubato refused a ratio or a buffer.
    #[error("resample: {0}")]
    Process(#[from] rubato::ResampleError),
    /// Input or output slice too short for this chunk (frames needed).
    #[error("buffer too short: need {0} frames")]
    Short(usize),
}

/// Sinc filter quality presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// 256-tap Blackman-Harris² sinc, cubic interpolation, oversampling 256: the
    /// quality target (THD+N ≤ −110 dB at 1 kHz).
    High,
    /// 128-tap sinc, cubic, oversampling 128: about half the CPU.
    Medium,
    /// 64-tap sinc, linear interpolation, oversampling 256: about an eighth of
    /// [`Quality::High`]'s CPU, for very small machines.
    Fast,
    /// No sinc filter: rubato's cubic polynomial interpolator (`Async::new_poly`).
    /// Far cheaper; for emulated CPUs (qemu tcg runs float SIMD in software) where
    /// even a short sinc does not fit in a period. Not band-limited.
    Poly,
}

from_names!(Quality, "resampler", {
    "high" => High,
    "medium" => Medium,
    "fast" => Fast,
    "poly" => Poly,
});

/// The steered resampler. See the module docs.
pub struct SteeredResampler {
    inner: Async<f32>,
    channels: usize,
    chunk: usize,
    ratio: f64,
    scratch_in: Vec<f32>,
    scratch_out: Vec<f32>,
}

impl SteeredResampler {
    /// A resampler for `channels` interleaved channels producing `chunk` output frames
    /// per call, starting at ratio 1.
    pub fn new(
        channels: usize,
        chunk: usize,
        quality: Quality,
    ) -> Result<SteeredResampler, ResamplerError> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(ResamplerError::Channels(channels));
        }
        let inner = if quality == Quality::Poly {
            Async::<f32>::new_poly(
                1.0,
                MAX_RELATIVE,
                rubato::PolynomialDegree::Cubic,
                chunk,
                channels,
                FixedAsync::Output,
            )?
        } else {
            Self::sinc(quality, chunk, channels)?
        };
        let in_max = inner.input_frames_max();
        Ok(SteeredResampler {
            scratch_in: vec![0.0; in_max * channels],
            scratch_out: vec![0.0; chunk * channels],
            inner,
            channels,
            chunk,
            ratio: 1.0,
        })
    }

    fn sinc(quality: Quality, chunk: usize, channels: usize) -> Result<Async<f32>, ResamplerError> {
        let params = match quality {
            Quality::High => SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2)
                .oversampling_factor(256),
            Quality::Medium => {
                SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2)
            }
            Quality::Fast => SincInterpolationParameters::new(64, WindowFunction::BlackmanHarris2)
                .oversampling_factor(256)
                .interpolation(rubato::SincInterpolationType::Linear),
            Quality::Poly => unreachable!("handled by new"),
        };
        Ok(Async::<f32>::new_sinc(
            1.0,
            MAX_RELATIVE,
            &params,
            chunk,
            channels,
            FixedAsync::Output,
        )?)
    }

    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Output frames per call (the fixed side).
    pub fn chunk(&self) -> usize {
        self.chunk
    }
    /// Current ratio (output/input).
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
    /// Input frames the next call consumes (varies with the ratio).
    pub fn input_frames_next(&self) -> usize {
        self.inner.input_frames_next()
    }
    /// Upper bound of [`Self::input_frames_next`] over the allowed ratio range.
    pub fn input_frames_max(&self) -> usize {
        self.inner.input_frames_max()
    }
    /// The filter's delay (output frames).
    pub fn delay_frames(&self) -> usize {
        self.inner.output_delay()
    }

    /// Steers the ratio (output/input); clamped to `[1/MAX_RELATIVE, MAX_RELATIVE]`.
    /// The change is ramped over the next chunk, so steering never clicks.
    pub fn set_ratio(&mut self, ratio: f64) -> Result<(), ResamplerError> {
        let r = ratio.clamp(1.0 / MAX_RELATIVE + 1e-9, MAX_RELATIVE - 1e-9);
        self.inner.set_resample_ratio(r, true)?;
        self.ratio = r;
        Ok(())
    }

    /// Resamples interleaved `f32`: reads [`Self::input_frames_next`] frames from
    /// `input`, writes [`Self::chunk`] frames to `output`. Returns (frames in, frames out).
    pub fn process_f32(
        &mut self,
        input: &[f32],
        output: &mut [f32],
    ) -> Result<(usize, usize), ResamplerError> {
        let need = self.inner.input_frames_next();
        let ch = self.channels;
        if input.len() < need * ch {
            return Err(ResamplerError::Short(need));
        }
        if output.len() < self.chunk * ch {
            return Err(ResamplerError::Short(self.chunk));
        }
        let a = InterleavedSlice::new(&input[..need * ch], ch, need)
            .map_err(|_| ResamplerError::Short(need))?;
        let mut b = InterleavedSlice::new_mut(&mut output[..self.chunk * ch], ch, self.chunk)
            .map_err(|_| ResamplerError::Short(self.chunk))?;
        Ok(self.inner.process_into_buffer(&a, &mut b, None)?)
    }

    /// Resamples into interleaved `i32` output of full scale `out_full_scale` (e.g.
    /// `2^31` for S32 device samples, `2^15` for S16); the output is clipped.
    /// The input is pulled from `fill(buf)`, which must write the interleaved frames
    /// asked for (`buf.len() / channels` of them) as `f32` in ±1.0.
    pub fn process_with(
        &mut self,
        fill: impl FnOnce(&mut [f32]),
        output: &mut [i32],
        out_full_scale: f32,
    ) -> Result<(usize, usize), ResamplerError> {
        let need = self.inner.input_frames_next();
        let ch = self.channels;
        fill(&mut self.scratch_in[..need * ch]);
        if output.len() < self.chunk * ch {
            return Err(ResamplerError::Short(self.chunk));
        }
        let sin = std::mem::take(&mut self.scratch_in);
        let mut sout = std::mem::take(&mut self.scratch_out);
        let r = self.process_f32(&sin, &mut sout);
        for (o, s) in output[..self.chunk * ch].iter_mut().zip(&sout) {
            *o = (*s as f64 * out_full_scale as f64)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32;
        }
        self.scratch_in = sin;
        self.scratch_out = sout;
        r
    }

    /// Resamples interleaved `i32` input (full scale `in_full_scale`) to interleaved
    /// `i32` output (full scale `out_full_scale`).
    pub fn process_i32(
        &mut self,
        input: &[i32],
        in_full_scale: f32,
        output: &mut [i32],
        out_full_scale: f32,
    ) -> Result<(usize, usize), ResamplerError> {
        let need = self.inner.input_frames_next();
        let ch = self.channels;
        if input.len() < need * ch {
            return Err(ResamplerError::Short(need));
        }
        let inv = 1.0 / in_full_scale;
        self.process_with(
            |buf| {
                for (d, s) in buf.iter_mut().zip(input) {
                    *d = *s as f32 * inv;
                }
            },
            output,
            out_full_scale,
        )
    }

    /// Clears the filter state (after a resync or restart).
    pub fn reset(&mut self) {
        self.inner.reset();
        let _ = self.inner.set_resample_ratio(self.ratio, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_channels_and_passes_ratio() {
        assert!(matches!(
            SteeredResampler::new(0, 64, Quality::Medium),
            Err(ResamplerError::Channels(0))
        ));
        assert!(matches!(
            SteeredResampler::new(65, 64, Quality::Medium),
            Err(ResamplerError::Channels(65))
        ));
        let mut r = SteeredResampler::new(2, 480, Quality::Medium).unwrap();
        r.set_ratio(1.001).unwrap();
        let input = vec![0.0f32; r.input_frames_max() * 2];
        let mut out = vec![0.0f32; 480 * 2];
        // Over many chunks, input consumed ≈ output / ratio.
        let (mut tin, mut tout) = (0usize, 0usize);
        for _ in 0..1000 {
            let (i, o) = r.process_f32(&input, &mut out).unwrap();
            tin += i;
            tout += o;
        }
        let measured = tout as f64 / tin as f64;
        assert!((measured - 1.001).abs() < 2e-5, "{measured}");
    }
}
