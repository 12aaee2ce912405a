/*
    bass_aes67.h: C header of the aes67 BASS 2.4 add-on
    (libbass_aes67.so on Linux, bass_aes67.dll on Windows).

    Load with BASS_PluginLoad("libbass_aes67.so", 0), then open a stream with
      BASS_StreamCreateURL("aes67://239.69.0.1:5004?iface=10.0.0.2", 0,
                           BASS_STREAM_DECODE | BASS_SAMPLE_FLOAT, NULL, NULL);

    Compatible with the seeds' add-on (BassAES67): same URL parameters, channel
    type and config ids. Include bass.h (from un4seen) before this file.

    URL: aes67://GROUP[:PORT][?PARAM=VALUE&...]            (port default 5004)
      iface= | interface=   interface IPv4 address or name (default: config INTERFACE)
      pt= | payload=        RTP payload type 0-127          (default: config PT, 96)
      jitter=               jitter buffer depth, ms 1-1000   (default: config JITTER, 10)
      ch= | channels=       channels 1-64                    (default 2)
      rate= | samplerate=   44100, 48000 or 96000 Hz         (default 48000)
      enc= | encoding=      L24 or L16                       (default L24)
      source=               sender IPv4 for a source-specific join (IGMPv3)
      sdp=PATH              describe the stream by an SDP file (RFC 4566);
                            only iface=, jitter= and fill= may accompany it
                            (e.g. aes67://sdp?sdp=/etc/aes67/studio1.sdp).
                            A regular local file of at most 64 KiB: UNC
                            (\\host\share, //host/share), \\.\ and \\?\ paths,
                            /dev, /proc, /sys and device names (NUL, COM1...)
                            are refused with BASS_ERROR_ILLPARAM before
                            anything is opened; FIFOs never block
      fill=silence|available  what a decode stream returns when less audio is
                            buffered than asked for: silence padding (default,
                            as the seeds' add-on) or only the audio received
      steer=resample|freq|off  playing (non-decode) streams: rate-control
                            BASS's pull against the media clock with the
                            engine's resampler (default), by steering
                            BASS_ATTRIB_FREQ (BASS resamples), or not at all
                            (bit-exact samples; the buffer drifts with the clocks)
    On Linux pass the URL as UTF-8 (BASS 2.4.17 hangs on BASS_UNICODE URLs there).

    Streams deliver 32-bit float samples (24-bit input is converted exactly).
    Playing streams are resampled (ratio steered within +-2000 ppm) so the
    buffer holds the link offset plus 40 ms whatever BASS's device clock;
    decode streams are never resampled (24-bit exact).

    PTP (Linux): one PTP slave per process runs while PTP_ENABLED is 1 and
    INTERFACE is set (name or IPv4 address); it starts/restarts when
    PTP_ENABLED, INTERFACE or PTP_DOMAIN is set (in the calling thread's
    network namespace) and stops on BASS_PluginFree. Streams created with
    CLOCK_MODE PTP while it runs use PTP time as media clock (RFC 7273
    mediaclk:direct); after CLOCK_FALLBACK_TIMEOUT s without lock they free-run
    on the stream (System) until PTP locks again. Windows: no PTP (state 0).
    When the buffer runs dry, streams output silence and count an underrun;
    decode streams opened with fill=available instead return only the audio
    received so far (BASS_ChannelGetData may return 0 bytes: call again later).

    Teardown: BASS_StreamFree (and the frees BASS_PluginFree does) never blocks
    the calling thread for more than about 5 ms: the stream's receive thread
    notices the stop within 2 ms and is joined once it has ended. Should it
    still be ending after 5 ms (an io_uring cancel the kernel is slow to
    complete, a busy machine, a thread exit under wine), Free returns anyway:
    on Linux the thread is joined by a later stream creation or free, and at
    the latest when the add-on unloads (BASS_PluginFree); on Windows it is
    left to end by itself and the add-on pins itself: it is not unloaded by
    BASS_PluginFree for the rest of the process (its config proc keeps
    answering). Either way that thread never runs unmapped code. steer=freq
    applies BASS_ATTRIB_FREQ from that receive thread (within 2 ms), never
    from BASS's mixing thread.

    Errors (BASS_ErrorGetCode after BASS_StreamCreateURL returns 0):
      BASS_ERROR_ILLPARAM  (20) malformed aes67:// URL (field named in
                                BASS_AES67_GetLastErrorText()), jitter= out of
                                1-1000, or an sdp= file refused (see sdp=)
      BASS_ERROR_FILEOPEN   (2) socket, bind or multicast join failed, the
                                playout buffer could not be allocated, or the
                                sdp= file cannot be read
      BASS_ERROR_INIT       (8) the BASS add-on table was not found
      BASS_ERROR_FILEFORM  (41) not an aes67:// URL (declined; BASS then reports
                                its own code, e.g. 48)
      BASS_ERROR_UNKNOWN   (-1) internal error
    SAP (RFC 2974, an extension): BASS_StreamCreateURL("aes67://sap/NAME") plays
    the session announced as NAME (URL-encoded; exact name or unique prefix),
    waiting up to timeout= ms (default 5000) for its announcement; also
    iface=, jitter=, fill=. Not heard in time: BASS_ERROR_FILEOPEN (the text
    names the timeout and the sessions heard); ambiguous prefix or unplayable
    SDP: BASS_ERROR_ILLPARAM.

    BASS_SetConfig/BASS_SetConfigPtr with an invalid value or on a read-only
    option fail with BASS_ERROR_ILLPARAM (20).
*/

#ifndef BASS_AES67_H
#define BASS_AES67_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef BASSAES67DEF
#define BASSAES67DEF(f) WINAPI f
#endif

/* Channel type (BASS_CHANNELINFO.ctype); origres is 24 (L24) or 16 (L16). */
#define BASS_CTYPE_STREAM_AES67             0x1f200

/* Settings for new streams (BASS_SetConfig / BASS_GetConfig) */
#define BASS_CONFIG_AES67_PT                0x20000 /* DWORD payload type 0-127, default 96 */
#define BASS_CONFIG_AES67_INTERFACE         0x20001 /* string ptr (BASS_SetConfigPtr/GetConfigPtr, BASS_UNICODE ok); "" = any */
/* Pointers from BASS_GetConfigPtr (INTERFACE, PTP_STATS, PTP_OFFSET) point at
   a copy belonging to the calling thread: no other thread's call (a
   concurrent BASS_SetConfigPtr included) changes it. Each stays valid and
   unchanged until the same thread asks for the same option again, and at
   most until the thread exits or the add-on is unloaded. */
#define BASS_CONFIG_AES67_JITTER            0x20002 /* DWORD ms 1-1000, default 10 */

/* Clock */
#define BASS_CONFIG_AES67_PTP_DOMAIN        0x20003 /* DWORD 0-255, default 0 */
#define BASS_CONFIG_AES67_PTP_STATS         0x20004 /* string ptr, read-only: status line */
#define BASS_CONFIG_AES67_PTP_OFFSET        0x20005 /* read-only offsetFromMaster ns: BASS_GetConfig gives it
                                                       saturated to int32, BASS_GetConfigPtr a pointer to the int64 */
#define BASS_CONFIG_AES67_PTP_STATE         0x20006 /* read-only, BASS_AES67_PTP_* */
#define BASS_CONFIG_AES67_PTP_ENABLED       0x20007 /* DWORD 0/1, default 1 */

/* Statistics of the most recently created stream still open (read-only) */
#define BASS_CONFIG_AES67_BUFFER_LEVEL      0x20010 /* % of target 0-200, 100 = at target (100 when no stream) */
#define BASS_CONFIG_AES67_JITTER_UNDERRUNS  0x20011 /* underruns */
#define BASS_CONFIG_AES67_PACKETS_RECEIVED  0x20012 /* RTP packets received */
#define BASS_CONFIG_AES67_PACKETS_LATE      0x20013 /* late or dropped packets */
#define BASS_CONFIG_AES67_BUFFER_PACKETS    0x20014 /* buffered audio, packets */
#define BASS_CONFIG_AES67_TARGET_PACKETS    0x20015 /* target buffer, packets */
#define BASS_CONFIG_AES67_PACKET_TIME       0x20016 /* packet time, microseconds */

/* Clock status (read-only) */
#define BASS_CONFIG_AES67_PTP_LOCKED        0x20017 /* 0/1 */
#define BASS_CONFIG_AES67_PTP_FREQ          0x20018 /* frequency correction, ppm x 1000 (int32) */

/* Clock selection */
#define BASS_CONFIG_AES67_CLOCK_MODE        0x20019 /* DWORD BASS_AES67_CLOCK_*, default PTP */
#define BASS_CONFIG_AES67_CLOCK_FALLBACK_TIMEOUT 0x2001A /* DWORD s unlocked before a PTP stream free-runs (System); 0 = never; default 5 */
#define BASS_CONFIG_AES67_SAP_SESSIONS      0x2001B /* string ptr (extension): SAP sessions heard on INTERFACE,
                                                   one per line: NAME\tGROUP:PORT\tENC/RATE/CH\tPTIME_MS\tCLOCK\tAGE_S;
                                                   the first read starts the listener (returns ""): read again later;
                                                   BASS_SetConfigPtr(..., NULL) stops it (the add-on
                                                   stays mapped while it runs, as with PTP) */

/* BASS_CONFIG_AES67_PTP_STATE values */
#define BASS_AES67_PTP_DISABLED             0
#define BASS_AES67_PTP_LISTENING            1
#define BASS_AES67_PTP_UNCALIBRATED         2
#define BASS_AES67_PTP_SLAVE                3

/* BASS_CONFIG_AES67_CLOCK_MODE values */
#define BASS_AES67_CLOCK_PTP                0
#define BASS_AES67_CLOCK_LIVEWIRE           1 /* not available: BASS_SetConfig fails with 20 */
#define BASS_AES67_CLOCK_SYSTEM             2

/* Text of the calling thread's last failed aes67:// stream creation (UTF-8,
   NUL-terminated; "" if none). Like BASS_ErrorGetCode it is per thread: the
   pointer is to a buffer of the calling thread that only that thread's next
   failed BASS_StreamCreateURL rewrites. Valid until then, and at most until
   the thread exits or the add-on is unloaded (BASS_PluginFree). */
const char *BASSAES67DEF(BASS_AES67_GetLastErrorText)(void);

/* How many streams' receive threads BASS_StreamFree had to leave running
   because they did not end within its 5 ms budget (see Teardown above; on
   Windows each pins the add-on); 0 in a healthy run. A diagnostic. */
DWORD BASSAES67DEF(BASS_AES67_DetachedFrees)(void);

/* ---- Output: any BASS channel -> an AES67 RTP stream (the seeds' API shape) ----

   The output reads the channel with BASS_ChannelGetData(ch, buf, bytes |
   BASS_DATA_FLOAT) on a thread of its own, one packet at a time, and the
   engine's pacing thread sends one packet per packet time (L24 or L16, RTP
   timestamps and pacing on the PTP media clock when CLOCK_MODE is PTP and
   the add-on's PTP slave runs, see PTP above; else on the system monotonic
   clock). The channel is consumed at exactly the media clock's rate, so a
   decode channel (e.g. BASS_StreamCreateFile with BASS_STREAM_DECODE)
   never drifts against PTP. A live channel (an aes67:// stream, best with
   fill=available) must run on the same clock as the output.
   Floats are converted by round(x * 2^23) (L24) or round(x * 2^15) (L16),
   clipped: 24/16-bit sources decoded by BASS go through bit-exactly.
   Channel count and rate must equal the source channel's (0 = take them
   from it); resample/mix with BASSmix first otherwise.
   A short read, or no data from a live channel, is padded with silence and
   counted in underruns; once the channel ends (or is freed) silence is sent
   until OutputStop. A failed send is counted in send_errors, never fatal.
   DSCP AF41 (34). Handles are opaque values, never pointers: a stale or
   freed handle is refused (BASS_ERROR_HANDLE, 5).

   Errors (NULL / FALSE, then BASS_ErrorGetCode, text in
   BASS_AES67_GetLastErrorText naming the config field):
     BASS_ERROR_HANDLE   (5) the source channel is not a BASS channel; an
                             unknown or freed output handle
     BASS_ERROR_ILLPARAM (20) a bad config field: group (0.0.0.0 or
                             broadcast), port (0), pt (> 127), channels
                             (1-64, must equal the source's), rate (44100,
                             48000, 96000, must equal the source's),
                             packet_time_us (125-5000), encoding (24/16),
                             ttl (1-255), sap_name; a payload over 1440 bytes
                             (the text says how many channels fit); NULL config
     BASS_ERROR_FILEOPEN  (2) OutputStart: interface, socket or SAP socket
     BASS_ERROR_INIT      (8) BASS's exports were not found
     BASS_ERROR_NOTAVAIL (37) a build without the engine */

typedef struct {
    BYTE group[4];          /* destination IPv4 a.b.c.d (multicast or unicast) */
    WORD port;              /* destination UDP port */
    BYTE iface[4];          /* interface IPv4; 0.0.0.0 = the INTERFACE option (or the OS default) */
    BYTE pt;                /* RTP payload type 0-127; 0 = the PT option (96) */
    WORD channels;          /* 1-64; 0 = the source channel's */
    DWORD rate;             /* 44100, 48000 or 96000 Hz; 0 = the source channel's */
    DWORD packet_time_us;   /* 125-5000 us; 0 = 1000 */
} BASS_AES67_OUTPUT_CONFIG; /* 24 bytes: the seeds' layout (L24, TTL 32, no SAP) */

typedef struct {
    BASS_AES67_OUTPUT_CONFIG base;
    DWORD encoding;         /* 24 (or 0) = L24, 16 = L16 */
    DWORD ttl;              /* multicast TTL 1-255; 0 = 32 */
    const char *sap_name;   /* UTF-8 session name (s=) announced by SAP (RFC 2974)
                               on 239.255.255.255:9875 every 30 s; NULL = no SAP */
} BASS_AES67_OUTPUT_CONFIG_EX; /* 40 bytes on 64-bit */

typedef struct {
    QWORD packets_sent;     /* RTP packets sent */
    QWORD samples_sent;     /* frames (samples per channel) sent, audio and silence */
    QWORD send_errors;      /* sends the OS refused */
    QWORD underruns;        /* packets short of audio while the channel was live */
} BASS_AES67_OUTPUT_STATS;

/* An output reading `channel`, stopped. NULL on error. */
void *BASSAES67DEF(BASS_AES67_OutputCreate)(DWORD channel, const BASS_AES67_OUTPUT_CONFIG *cfg);
void *BASSAES67DEF(BASS_AES67_OutputCreateEx)(DWORD channel, const BASS_AES67_OUTPUT_CONFIG_EX *cfg);
/* Opens the socket (in the calling thread's network namespace on Linux) and
   starts sending; the SAP announcement starts too. */
BOOL BASSAES67DEF(BASS_AES67_OutputStart)(void *handle);
/* Stops sending (SAP deletion sent); counters kept; can be started again. */
BOOL BASSAES67DEF(BASS_AES67_OutputStop)(void *handle);
BOOL BASSAES67DEF(BASS_AES67_OutputGetStats)(void *handle, BASS_AES67_OUTPUT_STATS *stats);
BOOL BASSAES67DEF(BASS_AES67_OutputIsRunning)(void *handle);
/* The media clock's rate correction against the local clock, ppm x 1000
   (the PTP servo frequency on PTP; 0 on the system clock). */
int BASSAES67DEF(BASS_AES67_OutputGetPPM)(void *handle);
/* Stops and frees the output. BASS_PluginFree frees every output too. */
BOOL BASSAES67DEF(BASS_AES67_OutputFree)(void *handle);

#ifdef __cplusplus
}
#endif

#endif /* BASS_AES67_H */
