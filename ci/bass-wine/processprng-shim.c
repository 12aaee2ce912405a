/* TEST-ONLY shim, never shipped: wine 8 lacks bcryptprimitives.dll, which
   Rust binaries for x86_64-pc-windows-gnu import ProcessPrng from. Real
   Windows 10+ has it. Built as bcryptprimitives.dll beside the test exe.
   ProcessPrng is implemented with RtlGenRandom (advapi32 SystemFunction036). */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
