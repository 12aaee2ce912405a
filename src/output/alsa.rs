//! A plain ALSA playback sink (blocking `snd_pcm_writei`, S32_LE).
//!
//! It plays the ring at the device's rate; when the ring runs dry it writes
//! silence and counts an underrun; xruns (EPIPE) are recovered with
//! `snd_pcm_prepare` and counted. Drift compensation and the real-time
//! thread live in the playout module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::{OutputError, OutputStats, PcmFormat};

/// Period size, frames at 48 kHz scale (5 ms).
const PERIOD_MS: u32 = 5;

/// Opens `device` for `fmt` and starts the playback thread.
///
/// Errors: [`OutputError::Alsa`] when the device cannot be opened or does
/// not accept the format.
pub fn spawn(
    device: &str,
    fmt: PcmFormat,
    mut ring: rtrb::Consumer<i32>,
    stop: Arc<AtomicBool>,
    stats: Arc<OutputStats>,
) -> Result<JoinHandle<Result<(), OutputError>>, OutputError> {
    let aerr = |e: alsa::Error| OutputError::Alsa {
        device: device.to_string(),
        reason: e.to_string(),
    };
    let pcm = PCM::new(device, Direction::Playback, false).map_err(aerr)?;
    let period = (fmt.rate * PERIOD_MS / 1000) as i64;
    {
        let hwp = HwParams::any(&pcm).map_err(aerr)?;
        hwp.set_channels(fmt.channels as u32).map_err(aerr)?;
        hwp.set_rate(fmt.rate, ValueOr::Nearest).map_err(aerr)?;
        hwp.set_format(Format::s32()).map_err(aerr)?;
        hwp.set_access(Access::RWInterleaved).map_err(aerr)?;
        hwp.set_period_size_near(period, ValueOr::Nearest)
            .map_err(aerr)?;
        hwp.set_buffer_size_near(period * 8).map_err(aerr)?;
        pcm.hw_params(&hwp).map_err(aerr)?;
    }
    let shift = 32 - fmt.bits as u32;
    let ch = fmt.channels as usize;
    let dev = device.to_string();
    Ok(std::thread::Builder::new()
        .name("aes67-alsa".into())
        .spawn(move || {
            let aerr = |e: alsa::Error| OutputError::Alsa {
                device: dev.clone(),
                reason: e.to_string(),
            };
            let io = pcm.io_i32().map_err(aerr)?;
            let mut buf = vec![0i32; period as usize * ch];
            let mut started = false;
            loop {
                let stopping = stop.load(Ordering::SeqCst);
                let avail = ring.slots() / ch;
                if stopping && avail == 0 {
                    let _ = pcm.drain();
                    return Ok(());
                }
                let n = avail.min(period as usize);
                if n > 0 {
                    let chunk = ring.read_chunk(n * ch).expect("n <= slots");
                    for (o, s) in buf.iter_mut().zip(chunk) {
                        *o = s << shift;
                    }
                    started = true;
                } else if started {
                    stats.underruns.fetch_add(1, Ordering::Relaxed);
                }
                buf[n * ch..].iter_mut().for_each(|x| *x = 0);
                if !started {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                match io.writei(&buf) {
                    Ok(_) => {}
                    Err(e) if e.errno() == libc::EPIPE => {
                        stats.xruns.fetch_add(1, Ordering::Relaxed);
                        pcm.prepare().map_err(aerr)?;
                    }
                    Err(e) => pcm.try_recover(e, true).map_err(aerr)?,
                }
                if let Ok(d) = pcm.delay() {
                    stats.delay_frames.store(d.max(0) as u64, Ordering::Relaxed);
                }
                stats.frames.fetch_add(period as u64, Ordering::Relaxed);
            }
        })
        .expect("spawn ALSA thread"))
}
