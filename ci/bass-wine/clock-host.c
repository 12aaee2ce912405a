/* Windows test host for bass_aes67.dll's receive and PTP paths with the real
   bass.dll, run under wine in a network namespace by tests/windows_wine.rs.
   Prints `key value` lines the test parses; the test asserts.

   usage:
     clock-host.exe rx URL SECONDS CHANNELS
       opens URL as a decode float stream, reads up to SECONDS of audio (or
       until 1.5 s without data once data came) and checks
       the samples bit-exactly against the LCG pattern (x = x*1664525 +
       1013904223, sample = (int32)x >> 8, 0 -> 1, seed 0x12345678,
       interleaved CHANNELS): prints `rx_samples`, `rx_compared`, `rx_bad`,
       `rx_packets`, `rx_late`, `rx_underruns`.
     clock-host.exe play IFACE URL SECONDS
       INTERFACE = IFACE, CLOCK_MODE PTP, PTP_ENABLED 1; waits (≤ 30 s) for
       PTP_LOCKED; then plays URL (a non-decode stream on the "no sound"
       device) for SECONDS, printing every 500 ms `tick t_ms level late
       underruns locked offset_ns freq_ppb_x1000` and at the start/end the
       PTP_STATS line. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef DWORD(WINAPI *fn_v)(void);
typedef int(WINAPI *fn_init)(int, DWORD, DWORD, void *, void *);
typedef DWORD(WINAPI *fn_pload)(const char *, DWORD);
typedef int(WINAPI *fn_h)(DWORD);
typedef int(WINAPI *fn_hb)(DWORD, int);
typedef int(WINAPI *fn_setc)(DWORD, DWORD);
typedef DWORD(WINAPI *fn_getc)(DWORD);
typedef int(WINAPI *fn_setcp)(DWORD, const void *);
typedef const void *(WINAPI *fn_getcp)(DWORD);
typedef DWORD(WINAPI *fn_url)(const char *, DWORD, DWORD, void *, void *);
typedef DWORD(WINAPI *fn_data)(DWORD, void *, DWORD);

#define DECODE 0x200000
#define FLOAT 0x100
#define CFG_INTERFACE 0x20001
#define CFG_PTP_STATS 0x20004
#define CFG_PTP_OFFSET 0x20005
#define CFG_PTP_STATE 0x20006
#define CFG_PTP_ENABLED 0x20007
#define CFG_BUFFER_LEVEL 0x20010
#define CFG_UNDERRUNS 0x20011
#define CFG_PACKETS 0x20012
#define CFG_LATE 0x20013
#define CFG_PTP_LOCKED 0x20017
#define CFG_PTP_FREQ 0x20018
#define CFG_CLOCK_MODE 0x20019

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    HMODULE b = LoadLibraryA("bass.dll");
    if (!b) { printf("error LoadLibrary(bass.dll) %lu\n", GetLastError()); return 2; }
#define F(t, n) t n = (t)(void *)GetProcAddress(b, "BASS_" #n); if (!n) { printf("error missing BASS_" #n "\n"); return 2; }
    F(fn_init, Init) F(fn_v, ErrorGetCode) F(fn_pload, PluginLoad) F(fn_h, PluginFree)
    F(fn_setc, SetConfig) F(fn_getc, GetConfig) F(fn_setcp, SetConfigPtr) F(fn_getcp, GetConfigPtr)
    F(fn_url, StreamCreateURL) F(fn_h, StreamFree) F(fn_data, ChannelGetData) F(fn_hb, ChannelPlay)
    if (argc < 2) { printf("error usage\n"); return 2; }
    if (!Init(0, 48000, 0, NULL, NULL)) { printf("error BASS_Init %lu\n", ErrorGetCode()); return 2; }
    DWORD plug = PluginLoad("bass_aes67.dll", 0);
    if (!plug) { printf("error BASS_PluginLoad %lu\n", ErrorGetCode()); return 2; }

    if (strcmp(argv[1], "rx") == 0 && argc >= 5) {
        int secs = atoi(argv[3]), ch = atoi(argv[4]);
        DWORD h = StreamCreateURL(argv[2], 0, DECODE | FLOAT, NULL, NULL);
        if (!h) { printf("error BASS_StreamCreateURL %lu\n", ErrorGetCode()); return 1; }
        printf("stream_open 1\n");
        size_t cap = 48000 * (size_t)ch * (size_t)secs, n = 0;
        float *got = malloc(cap * sizeof(float));
        DWORD t0 = GetTickCount(), last = 0;
        /* Until SECONDS of audio, or 1.5 s without data once data came (the sender ended). */
        while (n < cap && GetTickCount() - t0 < (DWORD)secs * 1000 + 60000) {
            DWORD want = (DWORD)((cap - n) > 9600 ? 9600 : (cap - n)) * 4;
            DWORD r = ChannelGetData(h, got + n, want);
            if (r == 0xffffffff) { printf("error ChannelGetData %lu\n", ErrorGetCode()); break; }
            n += r / 4;
            if (r) last = GetTickCount();
            else if (last && GetTickCount() - last > 1500) break;
            else Sleep(2);
        }
        printf("rx_packets %lu\nrx_late %lu\nrx_underruns %lu\n", GetConfig(CFG_PACKETS), GetConfig(CFG_LATE),
               GetConfig(CFG_UNDERRUNS));
        size_t total = 48000 * (size_t)ch * (size_t)(secs + 4);
        int *pat = malloc(total * sizeof(int));
        unsigned x = 0x12345678u;
        for (size_t i = 0; i < total; i++) { x = x * 1664525u + 1013904223u; int v = (int)x >> 8; pat[i] = v ? v : 1; }
        size_t first = 0;
        while (first < n && got[first] == 0.0f) first++;
        first -= first % (size_t)ch;
        long at = -1;
        if (n - first >= 16)
            for (size_t k = 0; k + 16 <= total && at < 0; k += (size_t)ch) {
                int m = 1;
                for (int j = 0; j < 16 && m; j++) m = pat[k + j] == (int)(got[first + j] * 8388608.0f);
                if (m) at = (long)k;
            }
        /* Compare up to the pattern's end or the first trailing silence (the sender stopped). */
        size_t cmp = 0, bad = 0;
        if (at >= 0)
            for (size_t i = 0; first + i < n && (size_t)at + i < total; i++) {
                float g = got[first + i];
                if (g == 0.0f) {
                    size_t z = first + i;
                    while (z < n && got[z] == 0.0f) z++;
                    if (z == n) break; /* trailing silence only */
                }
                cmp++;
                if (pat[at + i] != (int)(g * 8388608.0f)) bad++;
            }
        printf("rx_samples %zu\nrx_offset %ld\nrx_compared %zu\nrx_bad %zu\n", n, at, cmp, bad);
        StreamFree(h);
    } else if (strcmp(argv[1], "play") == 0 && argc >= 5) {
        int secs = atoi(argv[4]);
        SetConfigPtr(CFG_INTERFACE, argv[2]);
        SetConfig(CFG_CLOCK_MODE, 0);
        SetConfig(CFG_PTP_ENABLED, 1);
        DWORD t0 = GetTickCount();
        /* Creating a stream reconciles the slave too; poll the state until locked. */
        while (!GetConfig(CFG_PTP_LOCKED) && GetTickCount() - t0 < 30000) Sleep(100);
        printf("lock_wait_ms %lu\nlocked %lu\nstate %lu\n", GetTickCount() - t0, GetConfig(CFG_PTP_LOCKED),
               GetConfig(CFG_PTP_STATE));
        printf("stats %s\n", (const char *)GetConfigPtr(CFG_PTP_STATS));
        DWORD h = StreamCreateURL(argv[3], 0, FLOAT, NULL, NULL);
        if (!h) { printf("error BASS_StreamCreateURL %lu\n", ErrorGetCode()); return 1; }
        if (!ChannelPlay(h, 0)) { printf("error BASS_ChannelPlay %lu\n", ErrorGetCode()); return 1; }
        DWORD p0 = GetTickCount();
        while (GetTickCount() - p0 < (DWORD)secs * 1000) {
            Sleep(500);
            printf("tick %lu %lu %lu %lu %lu %ld %ld\n", GetTickCount() - p0, GetConfig(CFG_BUFFER_LEVEL),
                   GetConfig(CFG_LATE), GetConfig(CFG_UNDERRUNS), GetConfig(CFG_PTP_LOCKED),
                   (long)GetConfig(CFG_PTP_OFFSET), (long)GetConfig(CFG_PTP_FREQ));
        }
        printf("packets %lu\n", GetConfig(CFG_PACKETS));
        printf("stats %s\n", (const char *)GetConfigPtr(CFG_PTP_STATS));
        StreamFree(h);
    } else {
        printf("error usage\n");
        return 2;
    }
    PluginFree(plug);
    printf("done\n");
    return 0;
}
