//! The playout buffer: packets placed by RTP timestamp, released in order at
//! media-clock time minus the link offset (AES67-2018 §6.6, RFC 3550 §5.1).
//!
//! Sans-IO and allocation-free after construction. Call order:
//! 1. [`PlayoutBuffer::insert`] for every received datagram (in any order);
//! 2. [`PlayoutBuffer::release`] with the media clock's current position
//!    (in RTP timestamp units) to emit every frame whose play time has come;
//!    missing frames inside the received range are concealed with silence.
//! 3. [`PlayoutBuffer::flush`] at the end of a session to emit what remains.
//!
//! Timestamps are extended to 64 bits ([`crate::media::rtp::Unwrapper`]). A frame is
//! `channels` interleaved i32 samples in the stream's native range.

use crate::media::rtp::{self, RtpPacket, Unwrapper};
use crate::media::stream::Encoding;

/// Fixed parameters of a playout buffer.
#[derive(Debug, Clone, Copy)]
pub struct PlayoutConfig {
    /// Channels per frame, 1-64.
    pub channels: usize,
    /// Payload encoding.
    pub encoding: Encoding,
    /// Expected RTP payload type.
    pub payload_type: u8,
    /// Link offset, frames: a frame with RTP timestamp `ts` plays when the
    /// media clock reaches `ts + link_offset`.
    pub link_offset_frames: u32,
    /// Buffer window, frames (rounded up to a power of two). Packets further
    /// ahead than this are a timestamp jump and resynchronise the buffer.
    pub capacity_frames: usize,
}

/// Counters kept by the buffer (all monotonically increasing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlayoutStats {
    /// Packets accepted into the buffer.
    pub packets: u64,
    /// Packets lost: missing packets concealed with silence at play time.
    pub lost: u64,
    /// Frames of silence inserted for lost packets.
    pub concealed_frames: u64,
    /// Packets that arrived after their play time (dropped).
    pub late: u64,
    /// Packets that arrived after a packet with a later timestamp (kept).
    pub reordered: u64,
    /// Packets whose frames were all already buffered (dropped).
    pub duplicates: u64,
    /// Datagrams that were not valid RTP or had a bad payload size (dropped).
    pub malformed: u64,
    /// Valid RTP with another payload type (dropped).
    pub wrong_pt: u64,
    /// SSRC changes seen (each resynchronises).
    pub ssrc_changes: u64,
    /// Timestamp jumps beyond the buffer window (each resynchronises, once
    /// [`JUMP_CONFIRM`] packets in a row confirm it).
    pub ts_jumps: u64,
    /// Packets beyond the buffer window not (yet) confirmed as a jump
    /// (dropped; a single stray or forged packet far ahead).
    pub jump_unconfirmed: u64,
    /// Frames released for playout, concealment included.
    pub frames_out: u64,
    /// Packets whose frame count under the configured format disagrees with
    /// the RTP timestamp step between consecutive sequence numbers (or with
    /// the known packet time): another format on the wire (e.g. L16 stereo
    /// read as L24), muted (dropped).
    pub format_mismatch: u64,
}

/// What [`PlayoutBuffer::insert`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored (possibly reordered); `frames` frames at extended timestamp `ts`.
    Stored {
        /// Extended RTP timestamp of the first frame.
        ts: i64,
        /// Frames in the packet.
        frames: u32,
    },
    /// Stored after a resynchronisation (first packet, SSRC change, or jump).
    Resync {
        /// Extended RTP timestamp of the first frame.
        ts: i64,
        /// Frames in the packet.
        frames: u32,
    },
    /// Dropped as late, duplicate, malformed or of another payload type.
    Dropped(DropReason),
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not RTP, or the payload is not a whole number of frames.
    Malformed,
    /// Another payload type.
    WrongPayloadType,
    /// Its play time has passed.
    Late,
    /// All its frames were already buffered.
    Duplicate,
    /// Its size disagrees with the timestamp step (another format).
    FormatMismatch,
    /// Beyond the buffer window, and not yet confirmed as a jump.
    UnconfirmedJump,
}

/// Packets in a row, each continuing the last, that confirm a timestamp
/// jump beyond the buffer window.
pub const JUMP_CONFIRM: u32 = 4;

/// The format check (see [`PlayoutStats::format_mismatch`]): the previous
/// packet's (sequence number, timestamp, frames) and the frames per packet
/// last confirmed by a timestamp step (or the configured packet time).
#[derive(Debug, Clone, Copy, Default)]
struct FormatCheck {
    prev: Option<(u16, u32, u32)>,
    confirmed: Option<u32>,
}

impl FormatCheck {
    /// Whether a packet (`seq`, `ts`, `frames` under the configured format)
    /// is consistent; records it for the next one either way.
    /// Steps above `max_step` frames are timestamp jumps, not packet sizes.
    fn check(
        &mut self,
        seq: u16,
        ts: u32,
        frames: u32,
        nominal: Option<u32>,
        max_step: u32,
    ) -> bool {
        let ok = match self.prev {
            Some((ps, pts, pf))
                if seq == ps.wrapping_add(1) && (1..=max_step).contains(&ts.wrapping_sub(pts)) =>
            {
                let ok = ts.wrapping_sub(pts) == pf;
                if ok {
                    self.confirmed = Some(pf);
                }
                ok
            }
            // Not consecutive (first packet, loss, reorder, duplicate, a
            // timestamp jump): the
            // last confirmed size, else the configured packet time, else any.
            _ => match self.confirmed.or(nominal) {
                Some(f) => f == frames,
                None => true,
            },
        };
        self.prev = Some((seq, ts, frames));
        ok
    }
}

/// A playout buffer that cannot be allocated ([`PlayoutBuffer::try_new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityError {
    /// Capacity asked for, frames (after rounding when it could be rounded).
    pub frames: usize,
    /// Channels per frame.
    pub channels: usize,
}

impl std::fmt::Display for CapacityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = (self.frames as u128) * (self.channels as u128) * 4;
        write!(
            f,
            "cannot allocate a playout buffer of {} frames x {} channels ({} MiB)",
            self.frames,
            self.channels,
            bytes >> 20
        )
    }
}

impl std::error::Error for CapacityError {}

/// `n` zeroed elements, or `None` when the allocator refuses (no abort).
fn zeroed_vec<T: Clone + Default>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::default());
    Some(v)
}

/// A playout buffer indexed by RTP timestamp. See the module docs.
pub struct PlayoutBuffer {
    cfg: PlayoutConfig,
    mask: usize,
    samples: Vec<i32>,
    /// Per slot: the generation that stored it ([`Self::generation`] = present). A
    /// resynchronisation bumps the generation instead of clearing the window,
    /// so it costs O(1), not O(capacity) (a full clear every 65535 of them).
    present: Vec<u16>,
    /// The current generation (never 0, which marks an empty slot).
    generation: u16,
    zeros: Vec<i32>,
    ts: Unwrapper,
    ssrc: Option<u32>,
    /// Next extended timestamp to release; `None` before the first packet.
    read: Option<i64>,
    /// End (exclusive) of the newest packet stored.
    high: i64,
    last_frames: u32,
    /// Packet time in frames from the SDP, when known.
    nominal_frames: Option<u32>,
    format: FormatCheck,
    /// A would-be jump: the raw timestamp its next packet must have, count.
    pending_jump: Option<(u32, u32)>,
    /// Concealed frames of the current gap not yet counted as a whole packet.
    gap_carry: u64,
    stats: PlayoutStats,
}

impl PlayoutBuffer {
    /// Allocates a buffer. `capacity_frames` is rounded up to a power of two
    /// and to at least twice the link offset.
    ///
    /// Panics when the allocation fails; see [`PlayoutBuffer::try_new`] for
    /// capacities that come from outside (URLs, SDP).
    pub fn new(cfg: PlayoutConfig) -> PlayoutBuffer {
        PlayoutBuffer::try_new(cfg).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`PlayoutBuffer::new`], with fallible allocation
    /// (`Vec::try_reserve_exact`): a capacity the process cannot allocate is
    /// an error instead of an abort. The buffer takes
    /// `capacity × channels × 4` bytes of samples plus `capacity × 2` bytes of
    /// presence generations (capacity rounded as in `new`).
    ///
    /// Errors: [`CapacityError`] with the frames, channels and bytes asked
    /// for, when the size overflows or the allocator refuses it.
    pub fn try_new(cfg: PlayoutConfig) -> Result<PlayoutBuffer, CapacityError> {
        let err = |frames: usize| CapacityError {
            frames,
            channels: cfg.channels,
        };
        let cap = cfg
            .capacity_frames
            .max(2 * cfg.link_offset_frames as usize)
            .max(64)
            .checked_next_power_of_two()
            .ok_or(err(cfg.capacity_frames))?;
        let cfg = PlayoutConfig {
            capacity_frames: cap,
            ..cfg
        };
        let samples =
            zeroed_vec::<i32>(cap.checked_mul(cfg.channels).ok_or(err(cap))?).ok_or(err(cap))?;
        let present = zeroed_vec::<u16>(cap).ok_or(err(cap))?;
        let zeros = zeroed_vec::<i32>(1024 * cfg.channels.min(1 << 16)).ok_or(err(cap))?;
        Ok(PlayoutBuffer {
            mask: cap - 1,
            samples,
            present,
            generation: 1,
            zeros,
            ts: Unwrapper::new(32),
            ssrc: None,
            read: None,
            high: 0,
            last_frames: 0,
            nominal_frames: None,
            format: FormatCheck::default(),
            pending_jump: None,
            gap_carry: 0,
            stats: PlayoutStats::default(),
            cfg,
        })
    }

    /// The configuration in force (capacity rounded).
    pub fn config(&self) -> &PlayoutConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> PlayoutStats {
        self.stats
    }

    /// SSRC of the stream being played, if any.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Frames buffered from the release point to the newest packet's end.
    pub fn fill_frames(&self) -> u64 {
        self.read.map_or(0, |r| (self.high - r).max(0) as u64)
    }

    /// Frames in the most recent packet (the packet time in frames).
    pub fn packet_frames(&self) -> u32 {
        self.last_frames
    }

    /// Next extended RTP timestamp to be released, if started.
    pub fn read_ts(&self) -> Option<i64> {
        self.read
    }

    /// The packet time in frames when known (SDP `a=ptime` × rate): the
    /// format check of a packet with no consecutive predecessor uses it.
    pub fn set_packet_frames(&mut self, frames: Option<u32>) {
        self.nominal_frames = frames.filter(|f| *f > 0);
    }

    /// Counts a datagram that failed before parsing (e.g. truncated).
    pub fn count_malformed(&mut self) {
        self.stats.malformed += 1;
    }

    /// Parses and stores one datagram. Never panics on any input.
    pub fn insert(&mut self, datagram: &[u8]) -> Inserted {
        let Ok(p) = RtpPacket::parse(datagram) else {
            self.stats.malformed += 1;
            return Inserted::Dropped(DropReason::Malformed);
        };
        self.insert_packet(&p)
    }

    /// Stores one parsed packet. See [`PlayoutBuffer::insert`].
    pub fn insert_packet(&mut self, p: &RtpPacket<'_>) -> Inserted {
        if p.payload_type != self.cfg.payload_type {
            self.stats.wrong_pt += 1;
            return Inserted::Dropped(DropReason::WrongPayloadType);
        }
        let fb = self.cfg.channels * self.cfg.encoding.bytes_per_sample();
        if p.payload.is_empty()
            || !p.payload.len().is_multiple_of(fb)
            || p.payload.len() / fb > self.cfg.capacity_frames / 2
        {
            self.stats.malformed += 1;
            return Inserted::Dropped(DropReason::Malformed);
        }
        let frames = (p.payload.len() / fb) as u32;
        let mut resync = false;
        if self.ssrc != Some(p.ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
            }
            self.restart(p.ssrc);
            self.format = FormatCheck::default();
            resync = true;
        }
        let max_step = (self.cfg.capacity_frames / 2) as u32;
        if !self.format.check(
            p.sequence_number,
            p.timestamp,
            frames,
            self.nominal_frames,
            max_step,
        ) {
            self.stats.format_mismatch += 1;
            return Inserted::Dropped(DropReason::FormatMismatch);
        }
        let mut ts = self.ts.peek(p.timestamp);
        let cap = self.cfg.capacity_frames as i64;
        if let Some(read) = self.read {
            // A jump: further ahead than the window, or further behind than the window.
            if ts + frames as i64 > read + cap || ts + (frames as i64) < read - cap {
                // One packet far off does not throw the buffer away: it
                // takes JUMP_CONFIRM in a row, each continuing the last.
                let n = match self.pending_jump {
                    Some((next, n)) if next == p.timestamp => n + 1,
                    _ => 1,
                };
                if n < JUMP_CONFIRM {
                    self.pending_jump = Some((p.timestamp.wrapping_add(frames), n));
                    self.stats.jump_unconfirmed += 1;
                    return Inserted::Dropped(DropReason::UnconfirmedJump);
                }
                self.pending_jump = None;
                self.stats.ts_jumps += 1;
                self.restart(p.ssrc);
                ts = self.ts.peek(p.timestamp);
                resync = true;
            }
        }
        if !resync {
            self.pending_jump = None;
        }
        let ts = {
            self.ts.extend(p.timestamp);
            ts
        };
        let read = *self.read.get_or_insert(ts);
        if resync {
            self.high = ts;
        }
        let end = ts + frames as i64;
        if end <= read {
            self.stats.late += 1;
            return Inserted::Dropped(DropReason::Late);
        }
        let start = ts.max(read);
        if (start..end).all(|t| self.present[t as usize & self.mask] == self.generation) {
            self.stats.duplicates += 1;
            return Inserted::Dropped(DropReason::Duplicate);
        }
        if ts < self.high {
            self.stats.reordered += 1;
        }
        let ch = self.cfg.channels;
        // Decode in runs of contiguous slots (at most two: the ring wraps once).
        let mut t = start;
        while t < end {
            let slot = t as usize & self.mask;
            let run = ((end - t) as usize).min(self.cfg.capacity_frames - slot);
            let off = (t - ts) as usize * fb;
            let src = &p.payload[off..off + run * fb];
            let dst = &mut self.samples[slot * ch..(slot + run) * ch];
            match self.cfg.encoding {
                Encoding::L24 => rtp::decode_l24(src, dst),
                Encoding::L16 => rtp::decode_l16(src, dst),
            };
            self.present[slot..slot + run].fill(self.generation);
            t += run as i64;
        }
        self.high = self.high.max(end);
        self.last_frames = frames;
        self.stats.packets += 1;
        if resync {
            Inserted::Resync { ts, frames }
        } else {
            Inserted::Stored { ts, frames }
        }
    }

    fn restart(&mut self, ssrc: u32) {
        self.ssrc = Some(ssrc);
        self.ts.reset();
        self.read = None;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.present.fill(0);
            self.generation = 1;
        }
    }

    /// Extends a raw media clock position (RTP units) to this buffer's 64-bit
    /// timestamp domain.
    pub fn extend_clock(&self, rtp_now: u32) -> i64 {
        self.ts.peek(rtp_now)
    }

    /// Releases every frame due at media clock position `rtp_now` (RTP
    /// units, mod 2^32): frames with `ts + link_offset <= rtp_now`, but never
    /// past the newest packet received. Missing frames are emitted as silence
    /// and counted as lost. Calls `out(frames_interleaved)` one or more times;
    /// returns frames released.
    pub fn release(&mut self, rtp_now: u32, out: &mut dyn FnMut(&[i32])) -> u64 {
        if self.read.is_none() {
            return 0;
        }
        let until = self.extend_clock(rtp_now) - self.cfg.link_offset_frames as i64 + 1;
        self.release_until(until.min(self.high), out)
    }

    /// Releases everything buffered (end of session), concealing gaps.
    pub fn flush(&mut self, out: &mut dyn FnMut(&[i32])) -> u64 {
        let h = self.high;
        self.release_until(h, out)
    }

    /// Releases frames with extended timestamps below `until`.
    pub fn release_until(&mut self, until: i64, out: &mut dyn FnMut(&[i32])) -> u64 {
        let Some(mut read) = self.read else { return 0 };
        let start = read;
        let ch = self.cfg.channels;
        let mut gap_run = 0u64;
        while read < until {
            let slot = read as usize & self.mask;
            let room = (self.cfg.capacity_frames - slot) as i64;
            let want = (until - read).min(room) as usize;
            let g = self.generation;
            let here = self.present[slot] == g;
            let mut n = 1;
            while n < want
                && (self.present[slot + n] == g) == here
                && (here || n < self.zeros.len() / ch)
            {
                n += 1;
            }
            if here {
                if gap_run > 0 {
                    self.count_gap(gap_run);
                    gap_run = 0;
                }
                self.end_gap();
                out(&self.samples[slot * ch..(slot + n) * ch]);
                self.present[slot..slot + n].fill(0);
            } else {
                out(&self.zeros[..n * ch]);
                gap_run += n as u64;
            }
            read += n as i64;
        }
        if gap_run > 0 {
            self.count_gap(gap_run);
        }
        if read >= self.high {
            self.end_gap();
        }
        self.read = Some(read);
        let n = (read - start).max(0) as u64;
        self.stats.frames_out += n;
        n
    }

    /// Counts concealed frames; a gap may be released over several calls, so
    /// whole packets are counted as they complete and a partial packet when
    /// the gap ends.
    fn count_gap(&mut self, frames: u64) {
        self.stats.concealed_frames += frames;
        let pf = self.last_frames.max(1) as u64;
        self.gap_carry += frames;
        self.stats.lost += self.gap_carry / pf;
        self.gap_carry %= pf;
    }

    fn end_gap(&mut self) {
        if self.gap_carry > 0 {
            self.stats.lost += 1;
            self.gap_carry = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ch: usize, link: u32) -> PlayoutConfig {
        PlayoutConfig {
            channels: ch,
            encoding: Encoding::L24,
            payload_type: 96,
            link_offset_frames: link,
            capacity_frames: 4096,
        }
    }

    /// A capacity the process cannot allocate is an error, not an abort of
    /// the host (issue 13 #8): 2^40 frames x 64 channels is 256 TiB.
    #[test]
    fn unallocatable_capacity_is_an_error() {
        let huge = PlayoutConfig {
            capacity_frames: 1 << 40,
            ..cfg(64, 0)
        };
        let e = PlayoutBuffer::try_new(huge).err().expect("256 TiB refused");
        assert_eq!((e.frames, e.channels), (1 << 40, 64));
        assert!(e.to_string().contains("MiB"), "{e}");
        let overflow = PlayoutConfig {
            capacity_frames: usize::MAX / 2 + 2,
            ..cfg(2, 0)
        };
        assert!(PlayoutBuffer::try_new(overflow).is_err());
        let ok = PlayoutBuffer::try_new(cfg(2, 48)).expect("4096 frames");
        assert_eq!(ok.config().capacity_frames, 4096);
    }

    /// A packet of `frames` frames whose samples encode their own timestamp.
    fn packet(seq: u16, ts: u32, frames: u32, ch: usize, ssrc: u32) -> Vec<u8> {
        let mut b = vec![0u8; 12 + frames as usize * ch * 3];
        rtp::write_header(&mut b, false, 96, seq, ts, ssrc);
        let s: Vec<i32> = (0..frames as usize * ch)
            .map(|i| sample_at(ts.wrapping_add((i / ch) as u32), i % ch))
            .collect();
        rtp::encode_l24(&s, &mut b[12..]);
        b
    }

    fn sample_at(ts: u32, c: usize) -> i32 {
        ((ts.wrapping_mul(2654435761) >> 8) as i32 ^ c as i32) & 0x7fffff
    }

    fn collect(b: &mut PlayoutBuffer, now: u32) -> Vec<i32> {
        let mut v = Vec::new();
        b.release(now, &mut |s| v.extend_from_slice(s));
        v
    }

    #[test]
    fn in_order_stream_is_bit_exact_and_timed_by_link_offset() {
        let mut b = PlayoutBuffer::new(cfg(2, 240));
        let t0 = 1000u32;
        for i in 0..10u32 {
            assert!(matches!(
                b.insert(&packet(i as u16, t0 + 48 * i, 48, 2, 7)),
                Inserted::Stored { .. } | Inserted::Resync { .. }
            ));
        }
        // Before the link offset has elapsed nothing is due.
        assert!(collect(&mut b, t0 + 239).is_empty());
        let v = collect(&mut b, t0 + 240 + 95);
        assert_eq!(v.len(), 96 * 2);
        let v2 = collect(&mut b, t0 + 240 + 10_000); // capped at newest packet
        assert_eq!(v2.len(), (480 - 96) * 2);
        let all: Vec<i32> = v.into_iter().chain(v2).collect();
        for (i, f) in all.chunks(2).enumerate() {
            assert_eq!(f[0], sample_at(t0 + i as u32, 0));
            assert_eq!(f[1], sample_at(t0 + i as u32, 1));
        }
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn reordered_land_in_place_duplicates_and_late_dropped() {
        let mut b = PlayoutBuffer::new(cfg(1, 0));
        let order = [0u32, 2, 1, 3, 3, 5, 4];
        for &i in &order {
            b.insert(&packet(i as u16, 48 * i, 48, 1, 1));
        }
        let s = b.stats();
        assert_eq!((s.packets, s.reordered, s.duplicates), (6, 2, 1));
        let v = collect(&mut b, 48 * 6);
        assert_eq!(v.len(), 288);
        assert!(
            v.iter()
                .enumerate()
                .all(|(i, &x)| x == sample_at(i as u32, 0))
        );
        assert_eq!(
            b.insert(&packet(2, 96, 48, 1, 1)),
            Inserted::Dropped(DropReason::Late)
        );
        assert_eq!(b.stats().late, 1);
    }

    #[test]
    fn loss_is_concealed_with_silence_of_the_right_length() {
        let mut b = PlayoutBuffer::new(cfg(2, 0));
        for i in [0u32, 1, 3, 4, 7] {
            b.insert(&packet(i as u16, 48 * i, 48, 2, 1));
        }
        let v = collect(&mut b, 48 * 8);
        assert_eq!(v.len(), 8 * 48 * 2);
        for (f, frame) in v.chunks(2).enumerate() {
            let pkt = f / 48;
            if [2, 5, 6].contains(&pkt) {
                assert_eq!(frame, [0, 0]);
            } else {
                assert_eq!(frame[0], sample_at(f as u32, 0));
            }
        }
        assert_eq!((b.stats().lost, b.stats().concealed_frames), (3, 144));
    }

    #[test]
    fn a_gap_released_in_pieces_counts_once() {
        let mut b = PlayoutBuffer::new(cfg(1, 0));
        for i in [0u32, 2, 3, 6] {
            b.insert(&packet(i as u16, 48 * i, 48, 1, 1));
        }
        // Release in 7-frame steps so every gap is split across calls.
        let mut n = 0;
        let mut now = 0u32;
        while now < 48 * 7 {
            now += 7;
            b.release(now, &mut |s| n += s.len());
        }
        b.flush(&mut |s| n += s.len());
        assert_eq!(n, 48 * 7);
        assert_eq!((b.stats().lost, b.stats().concealed_frames), (3, 144));
    }

    #[test]
    fn ssrc_change_and_ts_jump_resync() {
        let mut b = PlayoutBuffer::new(cfg(1, 0));
        b.insert(&packet(0, 0, 48, 1, 1));
        b.insert(&packet(1, 48, 48, 1, 1));
        assert!(matches!(
            b.insert(&packet(9, 5_000_000, 48, 1, 2)),
            Inserted::Resync { .. }
        ));
        assert_eq!(b.stats().ssrc_changes, 1);
        // A jump resynchronises once JUMP_CONFIRM packets in a row confirm it.
        for k in 0..3u32 {
            assert_eq!(
                b.insert(&packet(10 + k as u16, 9_000_000 + 48 * k, 48, 1, 2)),
                Inserted::Dropped(DropReason::UnconfirmedJump)
            );
        }
        assert!(matches!(
            b.insert(&packet(13, 9_000_144, 48, 1, 2)),
            Inserted::Resync { .. }
        ));
        assert_eq!(b.stats().ts_jumps, 1);
        assert_eq!(b.stats().jump_unconfirmed, 3);
        let v = collect(&mut b, 9_000_144 + 48);
        assert_eq!(v.len(), 48);
        assert_eq!(v[0], sample_at(9_000_144, 0));
    }

    /// A resynchronisation is O(1): it starts a new generation of the window
    /// instead of clearing it. Audio stored before any number of them (here
    /// exactly one wrap of the 16-bit generation) never comes back.
    #[test]
    fn resync_never_replays_audio_of_an_earlier_generation() {
        let mut b = PlayoutBuffer::new(cfg(1, 0));
        // Stored at generation 1 and never released: slots of ts 48..96.
        b.insert(&packet(0, 0, 48, 1, 1));
        b.insert(&packet(1, 48, 48, 1, 1));
        b.release(47, &mut |_| {});
        // 65534 SSRC changes, each storing one packet elsewhere in the window;
        // the new stream below is the 65535th: the generation is back at 1.
        for k in 0..65534u32 {
            let ts = 200 + 48 * (k % 8);
            assert!(matches!(
                b.insert(&packet(0, ts, 48, 1, 2 + k)),
                Inserted::Resync { .. }
            ));
        }
        // A new stream whose packet 0 lands in the old packet's slots' neighbours:
        // ts 0..48 and 96..144 received, 48..96 missing (concealed, never the old audio).
        b.insert(&packet(0, 0, 48, 1, 99_999));
        b.insert(&packet(2, 96, 48, 1, 99_999));
        let v = collect(&mut b, 144);
        assert_eq!(v.len(), 144);
        assert!(v[48..96].iter().all(|&x| x == 0), "stale audio replayed");
        assert_eq!(v[0], sample_at(0, 0));
        assert_eq!(v[96], sample_at(96, 0));
    }

    #[test]
    fn timestamp_wrap_is_seamless() {
        let mut b = PlayoutBuffer::new(cfg(1, 0));
        let t0 = u32::MAX - 100;
        for i in 0..6u32 {
            b.insert(&packet(i as u16, t0.wrapping_add(48 * i), 48, 1, 3));
        }
        let v = collect(&mut b, t0.wrapping_add(288));
        assert_eq!(v.len(), 288);
        assert!(
            v.iter()
                .enumerate()
                .all(|(i, &x)| x == sample_at(t0.wrapping_add(i as u32), 0))
        );
        assert_eq!(b.stats().ts_jumps, 0);
    }

    #[test]
    fn malformed_and_foreign_are_counted() {
        let mut b = PlayoutBuffer::new(cfg(2, 0));
        assert_eq!(
            b.insert(&[1, 2, 3]),
            Inserted::Dropped(DropReason::Malformed)
        );
        let mut p = packet(0, 0, 48, 2, 1);
        p.pop(); // not a whole frame
        assert_eq!(b.insert(&p), Inserted::Dropped(DropReason::Malformed));
        let mut p = packet(0, 0, 48, 2, 1);
        p[1] = 97;
        assert_eq!(
            b.insert(&p),
            Inserted::Dropped(DropReason::WrongPayloadType)
        );
        let s = b.stats();
        assert_eq!((s.malformed, s.wrong_pt, s.packets), (2, 1, 0));
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..400), now in any::<u32>()) {
            let mut b = PlayoutBuffer::new(cfg(2, 48));
            b.insert(&v);
            let mut n = 0;
            b.release(now, &mut |s| n += s.len());
            proptest::prop_assert!(n % 2 == 0);
        }

        #[test]
        fn any_arrival_order_yields_exact_stream(perm in Just((0u32..40).collect::<Vec<_>>()).prop_shuffle()) {
            let mut b = PlayoutBuffer::new(cfg(1, 0));
            for &i in &perm { b.insert(&packet(i as u16, 48 * i, 48, 1, 5)); }
            // First packet inserted anchors the read point; everything after it is exact.
            let first = perm[0];
            let mut v = Vec::new();
            b.flush(&mut |s| v.extend_from_slice(s));
            proptest::prop_assert_eq!(v.len() as u32, 48 * (40 - first));
            for (i, &x) in v.iter().enumerate() { proptest::prop_assert_eq!(x, sample_at(48 * first + i as u32, 0)); }
        }
    }

    /// L16 stereo on the wire read as L24 stereo: 48 frames × 4 B = 192 B,
    /// which divides into 32 "L24" frames. The timestamp step (48) disagrees:
    /// muted and counted, not played as noise.
    #[test]
    fn format_change_is_muted_and_counted() {
        let l16_stereo = |seq: u16, ts: u32| {
            let mut b = vec![0u8; 12 + 48 * 2 * 2];
            rtp::write_header(&mut b, false, 96, seq, ts, 7);
            for (i, x) in b[12..].iter_mut().enumerate() {
                *x = (i * 37) as u8;
            }
            b
        };
        let mut b = PlayoutBuffer::new(cfg(2, 96));
        b.set_packet_frames(Some(48));
        for k in 0..10u32 {
            let r = b.insert(&l16_stereo(k as u16, 1000 + 48 * k));
            assert_eq!(r, Inserted::Dropped(DropReason::FormatMismatch), "{k}");
        }
        assert_eq!(b.stats().format_mismatch, 10);
        assert_eq!(b.stats().packets, 0);
        assert!(collect(&mut b, 2000).iter().all(|&s| s == 0));
        // Without a known packet time only the first packet gets through;
        // every consecutive one is caught by the timestamp step.
        let mut b = PlayoutBuffer::new(cfg(2, 96));
        for k in 0..10u32 {
            let _ = b.insert(&l16_stereo(k as u16, 1000 + 48 * k));
        }
        assert_eq!(b.stats().format_mismatch, 9);
        // The right format with loss, reordering and duplicates: no mismatch.
        let mut b = PlayoutBuffer::new(cfg(2, 96));
        b.set_packet_frames(Some(48));
        for k in [0u32, 1, 3, 2, 2, 5, 6, 7] {
            let _ = b.insert(&packet(k as u16, 1000 + 48 * k, 48, 2, 7));
        }
        assert_eq!(b.stats().format_mismatch, 0);
        assert_eq!(b.stats().packets, 7);
    }

    /// One same-SSRC packet far ahead (forged or stray) is dropped and
    /// counted; the buffered audio keeps playing, nothing is lost.
    #[test]
    fn one_packet_far_ahead_does_not_resync() {
        let mut b = PlayoutBuffer::new(cfg(1, 96));
        for k in 0..10u32 {
            b.insert(&packet(k as u16, 48 * k, 48, 1, 1));
        }
        assert_eq!(
            b.insert(&packet(10, 48 * 10 + 1_000_000, 48, 1, 1)),
            Inserted::Dropped(DropReason::UnconfirmedJump)
        );
        for k in 10..20u32 {
            assert!(matches!(
                b.insert(&packet(k as u16 + 1, 48 * k, 48, 1, 1)),
                Inserted::Stored { .. }
            ));
        }
        let v = collect(&mut b, 48 * 20 + 95);
        assert_eq!(v.len(), 48 * 20);
        assert_eq!(b.stats().lost, 0);
        assert_eq!((b.stats().ts_jumps, b.stats().jump_unconfirmed), (0, 1));
    }
}
