//! The BASS 2.4 add-on ABI: every `unsafe` of the add-on lives here.
//!
//! - Own `#[repr(C)]` declarations of the add-on structures (`BASS_PLUGININFO`,
//!   `BASS_PLUGINFORM`, `BASS_CHANNELINFO`, `ADDON_FUNCTIONS`, the host
//!   function table of `BASS_GetConfigPtr(0x8000)`). Layouts are identical on
//!   Linux x86-64 and Win64; all callbacks are `extern "system"` (WINAPI).
//! - `BASSplugin(face)`: face 0 → static plugin info, face 2 → the URL stream
//!   creator; every other face → NULL.
//! - BASS is resolved at run time from the already-loaded library (Linux:
//!   `dl_iterate_phdr` → `dlopen(RTLD_NOW|RTLD_NOLOAD)` → `dlsym`; Windows:
//!   `GetModuleHandleW(L"bass.dll")` → `GetProcAddress`). There is no
//!   link-time dependency on BASS.
//! - The config proc is registered (`RegisterPlugin(proc, 0)`) when the
//!   library is loaded and removed (`RegisterPlugin(proc, 1)`) when it is
//!   unloaded (`.fini_array` / `DllMain(PROCESS_DETACH)`).
//! - Every entry point runs its body under `catch_unwind`: no panic crosses
//!   into BASS (a caught panic sets `BASS_ERROR_UNKNOWN` / returns FALSE /
//!   ends the stream).

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config;
use crate::errors;
use crate::stream::{self, StreamState};

/// `BASS_PLUGINFORM`: 24 bytes on x64.
#[repr(C)]
pub(crate) struct PluginForm {
    ctype: u32,
    name: *const c_char,
    exts: *const c_char,
}

/// `BASS_PLUGININFO`: 16 bytes on x64.
#[repr(C)]
pub(crate) struct PluginInfo {
    version: u32,
    formatc: u32,
    formats: *const PluginForm,
}

/// `BASS_CHANNELINFO`: 40 bytes on x64.
#[repr(C)]
pub(crate) struct ChannelInfo {
    freq: u32,
    chans: u32,
    flags: u32,
    ctype: u32,
    origres: u32,
    plugin: u32,
    sample: u32,
    filename: *const c_char,
}

type StreamProc = unsafe extern "system" fn(u32, *mut c_void, u32, *mut c_void) -> u32;
type FreeFn = unsafe extern "system" fn(*mut c_void);
type GetInfoFn = unsafe extern "system" fn(*mut c_void, *mut ChannelInfo);
type Unused = Option<unsafe extern "system" fn()>;
/// `DWORD BASS_ChannelGetData(DWORD handle, void *buffer, DWORD length)`.
type GetDataFn = unsafe extern "system" fn(u32, *mut c_void, u32) -> u32;
/// `BOOL BASS_ChannelGetInfo(DWORD handle, BASS_CHANNELINFO *info)`.
type GetChannelInfoFn = unsafe extern "system" fn(u32, *mut ChannelInfo) -> i32;

/// `ADDON_FUNCTIONS`: flags then 14 function pointers (120 bytes on x64).
#[repr(C)]
pub(crate) struct AddonFunctions {
    flags: u32,
    free: Option<FreeFn>,
    get_length: Unused,
    get_tags: Unused,
    get_file_position: Unused,
    get_info: Option<GetInfoFn>,
    can_set_position: Unused,
    set_position: Unused,
    get_position: Unused,
    set_sync: Unused,
    remove_sync: Unused,
    can_resume: Unused,
    set_flags: Unused,
    attribute: Unused,
    attribute_ex: Unused,
}

/// The first slots of the host function table (`BASS_GetConfigPtr(0x8000)`);
/// each slot is pointer-sized. Only a prefix is declared and read.
#[repr(C)]
struct HostTable {
    set_error: Option<unsafe extern "system" fn(i32)>,
    register_plugin: Option<unsafe extern "system" fn(*const c_void, u32)>,
    create_stream: Option<
        unsafe extern "system" fn(
            u32,
            u32,
            u32,
            StreamProc,
            *mut c_void,
            *const AddonFunctions,
        ) -> u32,
    >,
}

const _: () = assert!(size_of::<PluginForm>() == 24 && size_of::<PluginInfo>() == 16);
const _: () = assert!(size_of::<ChannelInfo>() == 40 && size_of::<AddonFunctions>() == 120);

/// The host functions this add-on calls, copied out of BASS's table.
#[derive(Clone, Copy)]
struct Host {
    /// `BASS_ChannelSetAttribute` (an export, resolved by name; `None` if absent).
    set_attribute: Option<unsafe extern "system" fn(u32, u32, f32) -> i32>,
    /// `BASS_ChannelGetData` (an export; the output side's reader).
    #[cfg_attr(not(engine), allow(dead_code))]
    get_data: Option<GetDataFn>,
    /// `BASS_ChannelGetInfo` (an export; the output side's format check).
    #[cfg_attr(not(engine), allow(dead_code))]
    get_info: Option<GetChannelInfoFn>,
    set_error: unsafe extern "system" fn(i32),
    register_plugin: unsafe extern "system" fn(*const c_void, u32),
    create_stream: unsafe extern "system" fn(
        u32,
        u32,
        u32,
        StreamProc,
        *mut c_void,
        *const AddonFunctions,
    ) -> u32,
}

const BASS_VERSION_MAJOR: u32 = 0x0204;
const HOST_TABLE_ID: u32 = 0x8000;
const CONFIG_SET: u32 = 1;
const CONFIG_PTR: u32 = 2;
const BASS_UNICODE: u32 = 0x8000_0000;
const BASS_ATTRIB_FREQ: u32 = 1;
const BASS_SAMPLE_FLOAT: u32 = 0x100;
const BASS_STREAM_AUTOFREE: u32 = 0x40000;
const BASS_STREAM_DECODE: u32 = 0x20_0000;
const BASS_SPEAKER_MASK: u32 = 0x3f00_0000;
const BASS_STREAMPROC_END: u32 = 0x8000_0000;

struct SyncPtr<T>(T);
// SAFETY: the wrapped values are pointers to immutable 'static C strings and
// structures that are never written after initialisation.
unsafe impl<T> Sync for SyncPtr<T> {}

static FORMS: SyncPtr<[PluginForm; 1]> = SyncPtr([PluginForm {
    ctype: stream::CTYPE_AES67,
    name: c"AES67 network audio".as_ptr(),
    exts: c"aes67://".as_ptr(),
}]);

static INFO: SyncPtr<PluginInfo> = SyncPtr(PluginInfo {
    version: 0x0204_0000,
    formatc: 1,
    formats: FORMS.0.as_ptr(),
});

static FUNCS: AddonFunctions = AddonFunctions {
    flags: 0,
    free: Some(stream_free),
    get_length: None,
    get_tags: None,
    get_file_position: None,
    get_info: Some(stream_get_info),
    can_set_position: None,
    set_position: None,
    get_position: None,
    set_sync: None,
    remove_sync: None,
    can_resume: None,
    set_flags: None,
    attribute: None,
    attribute_ex: None,
};

static HOST: OnceLock<Option<Host>> = OnceLock::new();
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Finds BASS in this process and copies its host functions, once.
fn host() -> Option<Host> {
    *HOST.get_or_init(|| catch_unwind(resolve_host).ok().flatten())
}

fn host_from_table(
    get_config_ptr: unsafe extern "system" fn(u32) -> *const c_void,
    [set_attribute, get_data, get_info]: [*mut c_void; 3],
) -> Option<Host> {
    // SAFETY: BASS_GetConfigPtr is BASS's documented export, taking a DWORD option.
    let table = unsafe { get_config_ptr(HOST_TABLE_ID) } as *const HostTable;
    if table.is_null() {
        return None;
    }
    // SAFETY: a non-null result for 0x8000 is BASS's add-on function table,
    // which starts with the three pointer-sized slots HostTable declares and
    // lives as long as BASS is loaded.
    let t = unsafe { &*table };
    Some(Host {
        set_attribute: (!set_attribute.is_null()).then(|| {
            // SAFETY: BASS's export `BOOL BASS_ChannelSetAttribute(DWORD handle,
            // DWORD attrib, float value)` (WINAPI = C on Linux).
            unsafe {
                std::mem::transmute::<*mut c_void, unsafe extern "system" fn(u32, u32, f32) -> i32>(
                    set_attribute,
                )
            }
        }),
        get_data: (!get_data.is_null()).then(|| {
            // SAFETY: BASS's export `DWORD BASS_ChannelGetData(DWORD handle,
            // void *buffer, DWORD length)` (WINAPI = C on Linux).
            unsafe { std::mem::transmute::<*mut c_void, GetDataFn>(get_data) }
        }),
        get_info: (!get_info.is_null()).then(|| {
            // SAFETY: BASS's export `BOOL BASS_ChannelGetInfo(DWORD handle,
            // BASS_CHANNELINFO *info)` (WINAPI = C on Linux).
            unsafe { std::mem::transmute::<*mut c_void, GetChannelInfoFn>(get_info) }
        }),
        set_error: t.set_error?,
        register_plugin: t.register_plugin?,
        create_stream: t.create_stream?,
    })
}

/// Linux: finds the mapped BASS. Every loaded object is listed with
/// `dl_iterate_phdr`; a file named `libbass.so` is tried first, then the
/// others (BASS loaded under another name), each through
/// `dlopen(RTLD_NOW | RTLD_NOLOAD)` (never loads anything) and `dlsym`.
#[cfg(target_os = "linux")]
fn resolve_host() -> Option<Host> {
    use std::ffi::CString;
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> i32 {
        // SAFETY: dl_iterate_phdr passes a valid dl_phdr_info and our `data`,
        // which is the `Vec<CString>` below; dlpi_name is NULL or a C string.
        unsafe {
            let name = (*info).dlpi_name;
            if !name.is_null() && *name != 0 {
                (*(data as *mut Vec<CString>)).push(CStr::from_ptr(name).to_owned());
            }
        }
        0
    }
    let mut objects: Vec<CString> = Vec::new();
    // SAFETY: `each` matches the callback type and only pushes to `objects`
    // through `data`, which stays valid for the whole call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut objects as *mut Vec<CString>).cast()) };
    let is_libbass =
        |p: &CString| p.to_bytes().rsplit(|&b| b == b'/').next() == Some(b"libbass.so".as_slice());
    objects.sort_by_key(|p| !is_libbass(p));
    objects.iter().find_map(|p| host_from_object(p))
}

#[cfg(target_os = "linux")]
fn host_from_object(path: &std::ffi::CStr) -> Option<Host> {
    // SAFETY: RTLD_NOLOAD only returns a handle to a library already mapped;
    // it never loads code.
    let lib = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if lib.is_null() {
        return None;
    }
    // SAFETY: `lib` is a valid handle; the names are NUL-terminated.
    let (ver, gcp, extra) = unsafe {
        (
            libc::dlsym(lib, c"BASS_GetVersion".as_ptr()),
            libc::dlsym(lib, c"BASS_GetConfigPtr".as_ptr()),
            [
                libc::dlsym(lib, c"BASS_ChannelSetAttribute".as_ptr()),
                libc::dlsym(lib, c"BASS_ChannelGetData".as_ptr()),
                libc::dlsym(lib, c"BASS_ChannelGetInfo".as_ptr()),
            ],
        )
    };
    let out = host_from_exports(ver, gcp, extra);
    // The NOLOAD handle only raised the reference count; BASS itself keeps
    // its library mapped for as long as it can call us.
    // SAFETY: `lib` came from dlopen above and is closed once.
    unsafe { libc::dlclose(lib) };
    out
}

#[cfg(windows)]
fn resolve_host() -> Option<Host> {
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetModuleHandleW(name: *const u16) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    }
    let name: Vec<u16> = "bass.dll".encode_utf16().chain([0]).collect();
    // SAFETY: `name` is a NUL-terminated UTF-16 string; GetModuleHandleW does not load anything.
    let m = unsafe { GetModuleHandleW(name.as_ptr()) };
    if m.is_null() {
        return None;
    }
    // SAFETY: `m` is a loaded module; the names are NUL-terminated.
    let (ver, gcp, extra) = unsafe {
        (
            GetProcAddress(m, c"BASS_GetVersion".as_ptr()),
            GetProcAddress(m, c"BASS_GetConfigPtr".as_ptr()),
            [
                GetProcAddress(m, c"BASS_ChannelSetAttribute".as_ptr()),
                GetProcAddress(m, c"BASS_ChannelGetData".as_ptr()),
                GetProcAddress(m, c"BASS_ChannelGetInfo".as_ptr()),
            ],
        )
    };
    host_from_exports(ver, gcp, extra)
}

/// The host from the addresses of BASS's exports `BASS_GetVersion`,
/// `BASS_GetConfigPtr` and the optional `BASS_ChannelSetAttribute`,
/// `BASS_ChannelGetData`, `BASS_ChannelGetInfo` (null when missing):
/// `None` when a required one is missing or the major version is not 2.4's.
fn host_from_exports(ver: *mut c_void, gcp: *mut c_void, extra: [*mut c_void; 3]) -> Option<Host> {
    if ver.is_null() || gcp.is_null() {
        return None;
    }
    // SAFETY: these exports of BASS have the signatures (C on Linux, WINAPI
    // on Windows, both `extern "system"`) `DWORD BASS_GetVersion(void)` and
    // `const void *BASS_GetConfigPtr(DWORD)`.
    let (ver, gcp) = unsafe {
        (
            std::mem::transmute::<*mut c_void, unsafe extern "system" fn() -> u32>(ver),
            std::mem::transmute::<*mut c_void, unsafe extern "system" fn(u32) -> *const c_void>(
                gcp,
            ),
        )
    };
    // SAFETY: BASS_GetVersion takes no arguments.
    if unsafe { ver() } >> 16 != BASS_VERSION_MAJOR {
        return None;
    }
    host_from_table(gcp, extra)
}

#[cfg(not(any(target_os = "linux", windows)))]
fn resolve_host() -> Option<Host> {
    None
}

fn set_error(code: i32) {
    if let Some(h) = host() {
        // SAFETY: SetError takes an int error code; callable from any thread.
        unsafe { (h.set_error)(code) }
    }
}

/// Registers the config proc with BASS, once per load.
fn ensure_registered() {
    if REGISTERED.load(Ordering::Acquire) {
        return;
    }
    if let Some(h) = host()
        && !REGISTERED.swap(true, Ordering::AcqRel)
    {
        // SAFETY: mode 0 adds `config_proc`, whose signature is BASS's
        // `BOOL (CALLBACK *)(DWORD option, DWORD flags, void *value)`.
        unsafe { (h.register_plugin)(config_proc as *const c_void, 0) }
    }
}

/// Removes the config proc (library unload). BASS is looked up afresh, so
/// nothing is called if libbass was unloaded before us.
fn unregister() {
    if REGISTERED.swap(false, Ordering::AcqRel)
        && let Some(h) = resolve_host()
    {
        // SAFETY: mode 1 removes the proc registered with mode 0 above.
        unsafe { (h.register_plugin)(config_proc as *const c_void, 1) }
    }
}

extern "C" fn on_load() {
    let _ = catch_unwind(ensure_registered);
}

extern "C" fn on_unload() {
    #[cfg(not(windows))]
    let _ = catch_unwind(join_pending);
    #[cfg(engine)]
    let _ = catch_unwind(crate::output::shutdown);
    #[cfg(all(engine, target_os = "linux"))]
    let _ = catch_unwind(crate::ptpslave::shutdown);
    #[cfg(engine)]
    let _ = catch_unwind(crate::sapdir::shutdown);
    let _ = catch_unwind(unregister);
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".fini_array")]
static ON_UNLOAD: extern "C" fn() = on_unload;

/// Windows loader entry: register on attach, unregister on detach.
#[cfg(windows)]
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn DllMain(_module: *mut c_void, reason: u32, _reserved: *mut c_void) -> i32 {
    match reason {
        1 => on_load(),
        0 => on_unload(),
        _ => {}
    }
    1
}

/// The add-on entry point BASS looks up after loading the library.
///
/// face 0: `*const BASS_PLUGININFO` (static); face 2: the URL stream creator
/// `HSTREAM (CALLBACK *)(const char *url, DWORD offset, DWORD flags,
/// DOWNLOADPROC *proc, void *user)`; other faces: NULL.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASSplugin(face: u32) -> *const c_void {
    catch_unwind(|| {
        ensure_registered();
        match face {
            0 => (&INFO.0 as *const PluginInfo).cast(),
            2 => url_create as *const c_void,
            _ => std::ptr::null(),
        }
    })
    .unwrap_or(std::ptr::null())
}

/// The message of the calling thread's last failed `aes67://` stream
/// creation (UTF-8, NUL-terminated, names the URL field at fault), or "" if
/// none. The pointer is to a buffer of the calling thread: only that
/// thread's next failed creation rewrites it; valid until the thread exits
/// or the add-on is unloaded.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_GetLastErrorText() -> *const c_char {
    catch_unwind(errors::last_text_ptr).unwrap_or(c"".as_ptr())
}

/// Reads the text BASS hands a string option or URL: UTF-16 when `unicode`.
///
/// # Safety
/// `p` must be NULL or point at a NUL-terminated string of that encoding.
unsafe fn read_text(p: *const c_void, unicode: bool) -> Result<Option<String>, ()> {
    if p.is_null() {
        return Ok(None);
    }
    if unicode {
        let w = p as *const u16;
        let mut n = 0usize;
        // SAFETY: the caller guarantees a NUL-terminated UTF-16 string; we stop at its NUL
        // (or at 64 Ki units, far beyond any valid option or URL).
        while n < 65536 && unsafe { *w.add(n) } != 0 {
            n += 1;
        }
        // SAFETY: the `n` units before the NUL were just read, so they are valid.
        let s = unsafe { std::slice::from_raw_parts(w, n) };
        String::from_utf16(s).map(Some).map_err(|_| ())
    } else {
        // SAFETY: the caller guarantees a NUL-terminated C string.
        let c = unsafe { CStr::from_ptr(p as *const c_char) };
        c.to_str().map(|s| Some(s.to_string())).map_err(|_| ())
    }
}

/// BASS config proc: `BOOL (CALLBACK *)(DWORD option, DWORD flags, void *value)`.
/// Returns FALSE for every option that is not ours (BASS consults it first).
unsafe extern "system" fn config_proc(option: u32, flags: u32, value: *mut c_void) -> i32 {
    let unicode = option & BASS_UNICODE != 0;
    let id = option & !BASS_UNICODE;
    if !(0x20000..=config::SAP_SESSIONS).contains(&id) {
        return 0;
    }
    let set = flags & CONFIG_SET != 0;
    let ptr = flags & CONFIG_PTR != 0;
    // The SAP listener thread is spawned from a thread of ours, not the
    // caller's (see `on_fresh_thread`), so the library can still unload.
    #[cfg(all(engine, target_os = "linux"))]
    if id == config::SAP_SESSIONS && ptr && !set {
        let _ = catch_unwind(|| on_fresh_thread(crate::sapdir::ensure_default_listener));
    }
    let r = catch_unwind(AssertUnwindSafe(|| -> bool {
        match (ptr, set) {
            (false, _) if value.is_null() => false,
            (false, false) => match config::get_dword(id) {
                // SAFETY: for BASS_GetConfig, `value` is a writable DWORD*.
                Some(v) => unsafe {
                    *(value as *mut u32) = v;
                    true
                },
                None => false,
            },
            // SAFETY: for BASS_SetConfig, `value` is a readable DWORD*.
            (false, true) => config::set_dword(id, unsafe { *(value as *const u32) }),
            (true, false) => {
                if value.is_null() {
                    return false;
                }
                match config::get_ptr(id, unicode) {
                    // SAFETY: for BASS_GetConfigPtr, `value` is a writable void**;
                    // the pointer stored points at this thread's buffer (state.rs).
                    Some(p) => unsafe {
                        *(value as *mut *const c_void) = p;
                        true
                    },
                    None => false,
                }
            }
            (true, true) => {
                // SAFETY: for BASS_SetConfigPtr, `value` is the caller's string
                // pointer (UTF-16 when BASS_UNICODE is in the option) or NULL.
                match unsafe { read_text(value, unicode) } {
                    Ok(t) => config::set_str(id, t.as_deref()),
                    Err(()) => false,
                }
            }
        }
    }));
    let ok = r.unwrap_or(false);
    #[cfg(engine)]
    if ok
        && set
        && matches!(
            id,
            config::PTP_ENABLED | config::INTERFACE | config::PTP_DOMAIN
        )
    {
        // The PTP thread is started on a fresh thread of ours (see
        // `on_fresh_thread`); it inherits the caller's network namespace.
        let _ = catch_unwind(|| on_fresh_thread(crate::ptpslave::reconcile));
    }
    i32::from(ok)
}

/// Face 2: creates a stream for an `aes67://` URL, or declines other URLs
/// with `BASS_ERROR_FILEFORM` so BASS tries its other handlers.
unsafe extern "system" fn url_create(
    url: *const c_char,
    _offset: u32,
    flags: u32,
    _proc: *const c_void,
    _user: *mut c_void,
) -> u32 {
    #[cfg(not(windows))]
    let _ = catch_unwind(reap_pending);
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<u32, i32> {
        // SAFETY: BASS passes the URL as a NUL-terminated string, UTF-16 with BASS_UNICODE.
        let text = match unsafe { read_text(url.cast(), flags & BASS_UNICODE != 0) } {
            Ok(Some(t)) => t,
            _ => return Err(errors::BASS_ERROR_FILEFORM),
        };
        if !stream::is_aes67_url(&text) {
            return Err(errors::BASS_ERROR_FILEFORM);
        }
        let host = host().ok_or(errors::BASS_ERROR_INIT)?;
        let decode = flags & BASS_STREAM_DECODE != 0;
        let st = on_fresh_thread(move || stream::open(&text, decode, apply_freq))
            .map_err(|e| errors::fail(&e))?;
        let (rate, chans) = (st.sample_rate(), st.channels());
        let freq = st.freq.clone();
        let raw = Box::into_raw(Box::new(st));
        let bflags = (flags & (BASS_STREAM_DECODE | BASS_STREAM_AUTOFREE | BASS_SPEAKER_MASK))
            | BASS_SAMPLE_FLOAT;
        // SAFETY: CreateStream's documented signature; `raw` stays valid until
        // BASS calls `stream_free` with it (or we free it below on failure).
        let h =
            unsafe { (host.create_stream)(rate, chans, bflags, stream_proc, raw.cast(), &FUNCS) };
        if h == 0 {
            // SAFETY: BASS did not take `raw` (creation failed), so we still own it.
            drop(unsafe { Box::from_raw(raw) });
            // BASS has set its own error code (e.g. BASS_ERROR_INIT, BASS_ERROR_FORMAT).
            return Err(0);
        }
        freq.set_handle(h);
        Ok(h)
    }));
    match r {
        Ok(Ok(h)) => {
            set_error(errors::BASS_OK);
            h
        }
        Ok(Err(0)) => 0,
        Ok(Err(code)) => {
            set_error(code);
            0
        }
        Err(_) => {
            errors::set_text("internal error (panic) while creating the stream");
            set_error(errors::BASS_ERROR_UNKNOWN);
            0
        }
    }
}

/// Runs `f` on a new, short-lived OS thread and returns its result.
///
/// Why: Rust's std registers thread-local destructors on a thread that
/// spawns threads (the engine's ingest thread). On Linux, glibc then keeps
/// this library mapped until that thread exits, so `BASS_PluginFree` would
/// not unload it (and not remove the config proc) while the application's
/// thread lives. Creating the engine stream on our own thread, which exits
/// right away, keeps the caller's thread free of our destructors. The new
/// thread inherits the caller's network namespace (Linux).
#[cfg(target_os = "linux")]
fn on_fresh_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    type Job = Box<dyn FnOnce() + Send>;
    extern "C" fn trampoline(arg: *mut c_void) -> *mut c_void {
        // SAFETY: `arg` is the Box<Job> leaked below, handed to exactly one thread.
        let job = unsafe { Box::from_raw(arg as *mut Job) };
        let _ = catch_unwind(AssertUnwindSafe(job));
        std::ptr::null_mut()
    }
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = slot.clone();
    let job: Job = Box::new(move || {
        let r = f();
        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    });
    let arg = Box::into_raw(Box::new(job));
    let mut tid: libc::pthread_t = 0;
    // SAFETY: default attributes; `trampoline` has the pthread start signature
    // and takes ownership of `arg`.
    let rc = unsafe { libc::pthread_create(&mut tid, std::ptr::null(), trampoline, arg.cast()) };
    if rc != 0 {
        // SAFETY: the thread was not created, so `arg` is still ours.
        let job = unsafe { Box::from_raw(arg) };
        job();
    } else {
        // SAFETY: `tid` is a joinable thread we created; joined exactly once.
        unsafe { libc::pthread_join(tid, std::ptr::null_mut()) };
    }
    let r = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    r.expect("job ran to completion (a panic is re-raised here and caught by the entry point)")
}

#[cfg(not(target_os = "linux"))]
fn on_fresh_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    f()
}

/// STREAMPROC: fills `len` bytes of 32-bit float frames.
unsafe extern "system" fn stream_proc(
    h: u32,
    buf: *mut c_void,
    len: u32,
    inst: *mut c_void,
) -> u32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        if inst.is_null() || buf.is_null() {
            return BASS_STREAMPROC_END;
        }
        // SAFETY: `inst` is the Box<StreamState> given to CreateStream, alive
        // until Free. BASS calls the STREAMPROC of one stream from one thread at
        // a time and never after Free, so this is the only access to `rt`
        // (GetInfo reads only the immutable `origres`).
        let st = unsafe { &mut *(*(inst as *const StreamState)).rt.get() };
        // SAFETY: BASS hands a writable buffer of `len` bytes, aligned for
        // floats since the stream was created with BASS_SAMPLE_FLOAT.
        let out = unsafe { std::slice::from_raw_parts_mut(buf as *mut f32, len as usize / 4) };
        // Never calls back into BASS: a steer=freq stream only publishes its
        // BASS_ATTRIB_FREQ (an atomic store), applied by `apply_freq` on the
        // stream's ingest thread.
        let _ = h;
        (st.fill(out) * 4) as u32
    }));
    r.unwrap_or(BASS_STREAMPROC_END)
}

/// `steer=freq`: applies `hz` as the channel's BASS_ATTRIB_FREQ. Runs on
/// the stream's ingest thread (the engine's `on_wake`), never on BASS's
/// audio thread; `handle` may have been freed meanwhile, which BASS
/// answers with an error (ignored).
fn apply_freq(handle: u32, hz: f32) {
    if let Some(set) = host().and_then(|h| h.set_attribute) {
        // SAFETY: BASS_ChannelSetAttribute(DWORD, DWORD, float) may be called
        // from any thread; attribute 1 is BASS_ATTRIB_FREQ, a float in Hz;
        // an invalid handle is refused by BASS, not dereferenced.
        unsafe { set(handle, BASS_ATTRIB_FREQ, hz) };
    }
}

/// ADDON_FUNCTIONS.Free: stops the engine stream and frees the instance
/// without ever blocking BASS's thread for more than
/// [`stream::FREE_WAIT`] (5 ms) plus microseconds: the ingest thread is
/// asked to stop and joined only once it has ended (on Windows: the OS
/// thread has terminated, so none of our code runs on it any more). If it
/// has not ended by then (a slow io_uring cancel, a busy machine, a slow
/// thread exit under wine) it is handed over so that it can never run
/// unmapped code: Linux: to [`PENDING`], joined once ended by a later
/// create or free, and at the latest by the library's unload (`fini`);
/// Windows (where `DllMain` must not wait for threads): detached, and the
/// library pinned (never unloaded).
unsafe extern "system" fn stream_free(inst: *mut c_void) {
    if inst.is_null() {
        return;
    }
    let t0 = std::time::Instant::now();
    // SAFETY: `inst` is the pointer from Box::into_raw in url_create; BASS
    // calls Free exactly once, after the last STREAMPROC call.
    let b = unsafe { Box::from_raw(inst as *mut StreamState) };
    let Ok(Some(thread)) = catch_unwind(AssertUnwindSafe(move || b.teardown())) else {
        return;
    };
    let _ = catch_unwind(AssertUnwindSafe(move || {
        while !thread_ended(&thread) {
            if t0.elapsed() >= stream::FREE_WAIT {
                DETACHED.fetch_add(1, Ordering::Relaxed);
                #[cfg(windows)]
                {
                    // Dropping the handle detaches the thread; it frees its
                    // own resources when it ends.
                    drop(thread);
                    pin_library();
                }
                #[cfg(not(windows))]
                crate::state::lock(&PENDING).push(thread);
                return;
            }
            pause();
        }
        let _ = thread.join();
    }));
    #[cfg(not(windows))]
    let _ = catch_unwind(reap_pending);
}

/// Linux: ingest threads that had not ended when their stream's Free gave
/// up waiting; each ends within milliseconds (at most the 2 s of an
/// io_uring cancel). Joined by [`reap_pending`] once ended, and all by
/// [`join_pending`] when the library unloads, before its code is unmapped.
#[cfg(not(windows))]
static PENDING: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Joins the [`PENDING`] threads that have ended (never waits).
#[cfg(not(windows))]
fn reap_pending() {
    let mut p = crate::state::lock(&PENDING);
    let mut i = 0;
    while i < p.len() {
        if p[i].is_finished() {
            let _ = p.swap_remove(i).join();
        } else {
            i += 1;
        }
    }
}

/// Library unload: joins every [`PENDING`] thread (each is already ending).
#[cfg(not(windows))]
fn join_pending() {
    let all = std::mem::take(&mut *crate::state::lock(&PENDING));
    for t in all {
        let _ = t.join();
    }
}

/// True once `t` can be joined without blocking. Linux: its closure has
/// returned (what remains is glibc's exit path, microseconds, which never
/// waits for us). Windows: the OS thread has terminated (its exit runs
/// every DLL's `DllMain(THREAD_DETACH)` under the loader lock, which can
/// take long under wine; until then it still runs our code).
fn thread_ended(t: &std::thread::JoinHandle<()>) -> bool {
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawHandle;
        #[link(name = "kernel32")]
        unsafe extern "system" {
            fn WaitForSingleObject(handle: *mut c_void, ms: u32) -> u32;
        }
        // SAFETY: the handle of a thread we hold (JoinHandle keeps it
        // open); a zero timeout only polls. WAIT_OBJECT_0 (0): terminated.
        unsafe { WaitForSingleObject(t.as_raw_handle().cast(), 0) == 0 }
    }
    #[cfg(not(windows))]
    {
        t.is_finished()
    }
}

/// A short pause while waiting for a thread to end: 100 µs on Linux; a
/// yield elsewhere (Windows' Sleep rounds up to the timer period, up to
/// 15.6 ms, beyond the free's budget).
fn pause() {
    #[cfg(target_os = "linux")]
    std::thread::sleep(std::time::Duration::from_micros(100));
    #[cfg(not(target_os = "linux"))]
    std::thread::yield_now();
}

/// Number of streams whose ingest thread `stream_free` could not join
/// within its wait (Linux: joined later; Windows: detached, library pinned).
static DETACHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Windows: keeps this library loaded for the rest of the process (a
/// detached thread of ours may still run its code):
/// `GetModuleHandleExW(FROM_ADDRESS | PIN)`.
#[cfg(windows)]
fn pin_library() {
    #[cfg(windows)]
    {
        #[link(name = "kernel32")]
        unsafe extern "system" {
            fn GetModuleHandleExW(flags: u32, name: *const c_void, module: *mut *mut c_void)
            -> i32;
        }
        const FROM_ADDRESS: u32 = 0x4;
        const PIN: u32 = 0x1;
        let mut m: *mut c_void = std::ptr::null_mut();
        // SAFETY: FROM_ADDRESS takes an address inside our module (a function
        // of ours); PIN keeps the module loaded until the process ends;
        // `m` is a writable out-parameter.
        unsafe { GetModuleHandleExW(FROM_ADDRESS | PIN, stream_free as *const c_void, &mut m) };
    }
}

/// How many streams' ingest threads `BASS_StreamFree` could not join within
/// its 5 ms wait (Linux: joined later; Windows: detached, library pinned);
/// 0 when every free joined its thread in time.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_DetachedFrees() -> u32 {
    DETACHED.load(Ordering::Relaxed).min(u32::MAX as u64) as u32
}

/// ADDON_FUNCTIONS.GetInfo: ctype 0x1f200 and the stream's original resolution.
unsafe extern "system" fn stream_get_info(inst: *mut c_void, info: *mut ChannelInfo) {
    if inst.is_null() || info.is_null() {
        return;
    }
    // SAFETY: `inst` is our live StreamState; a shared reference is fine
    // because STREAMPROC only mutates inside the `rt` UnsafeCell.
    let bits = unsafe { &*(inst as *const StreamState) }.origres;
    // SAFETY: BASS passes its BASS_CHANNELINFO, already filled, for us to amend.
    unsafe {
        (*info).ctype = stream::CTYPE_AES67;
        (*info).origres = bits;
    }
}

// ---- the output side: BASS_AES67_Output* (see crate::output) ----

/// `BASS_AES67_OUTPUT_CONFIG`: the seeds' layout, 24 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct OutputConfigC {
    group: [u8; 4],
    port: u16,
    iface: [u8; 4],
    pt: u8,
    channels: u16,
    rate: u32,
    packet_time_us: u32,
}

/// `BASS_AES67_OUTPUT_CONFIG_EX`: the base, then encoding, TTL and SAP name (40 bytes).
#[repr(C)]
pub(crate) struct OutputConfigExC {
    base: OutputConfigC,
    encoding: u32,
    ttl: u32,
    sap_name: *const c_char,
}

/// `BASS_AES67_OUTPUT_STATS`: four QWORDs.
#[repr(C)]
pub(crate) struct OutputStatsC {
    packets_sent: u64,
    samples_sent: u64,
    send_errors: u64,
    underruns: u64,
}

const _: () = assert!(size_of::<OutputConfigC>() == 24 && size_of::<OutputStatsC>() == 32);
const _: () = assert!(size_of::<OutputConfigExC>() == 24 + 8 + size_of::<*const c_char>());

#[cfg_attr(not(engine), allow(dead_code))]
const BASS_DATA_FLOAT: u32 = 0x4000_0000;
const BASS_ERROR_HANDLE: i32 = 5;

/// Reads a BASS channel with `BASS_ChannelGetData(.., BASS_DATA_FLOAT)`.
#[cfg(engine)]
struct BassReader {
    get_data: GetDataFn,
    handle: u32,
}

#[cfg(engine)]
impl crate::output::ChannelReader for BassReader {
    fn read(&mut self, out: &mut [f32]) -> Option<usize> {
        let bytes = (out.len() * 4).min(0x0FFF_FFFF) as u32;
        // SAFETY: `out` is a writable buffer of `bytes` bytes, aligned for
        // floats; BASS writes at most `bytes` bytes of floats (BASS_DATA_FLOAT).
        // Any handle value is safe to pass: BASS fails an invalid one with -1.
        let r = unsafe {
            (self.get_data)(
                self.handle,
                out.as_mut_ptr().cast(),
                bytes | BASS_DATA_FLOAT,
            )
        };
        (r != u32::MAX).then_some(r as usize / 4)
    }
}

/// The handle as the pointer-sized value the API hands out (the seeds' type).
fn to_handle(id: usize) -> *mut c_void {
    id as *mut c_void
}

fn from_handle(h: *mut c_void) -> usize {
    h as usize
}

/// Reads the C config (`ex`: the extended struct) into raw values.
///
/// # Safety
/// `cfg` must point at a readable `BASS_AES67_OUTPUT_CONFIG`, or at a
/// `BASS_AES67_OUTPUT_CONFIG_EX` when `ex`, whose `sap_name` is NULL or a
/// NUL-terminated string.
#[cfg(engine)]
unsafe fn read_output_config(
    cfg: *const c_void,
    ex: bool,
) -> Result<crate::output::RawConfig, errors::OpenError> {
    // SAFETY: the caller guarantees a readable struct of the chosen kind.
    let b = unsafe { *(cfg as *const OutputConfigC) };
    let mut raw = crate::output::RawConfig {
        group: b.group,
        port: b.port,
        iface: b.iface,
        pt: b.pt,
        channels: b.channels,
        rate: b.rate,
        packet_time_us: b.packet_time_us,
        ..Default::default()
    };
    if ex {
        // SAFETY: as above, the extended struct.
        let e = unsafe { &*(cfg as *const OutputConfigExC) };
        raw.encoding = e.encoding;
        raw.ttl = e.ttl;
        // SAFETY: NULL or a NUL-terminated string (the caller's contract).
        raw.sap_name = unsafe { read_text(e.sap_name.cast(), false) }
            .map_err(|()| errors::OpenError::url("sap_name is not valid UTF-8"))?;
    }
    Ok(raw)
}

/// Validates the config against the source channel and registers a stopped
/// output; `Err(BASS error code)` with the text set.
#[cfg(engine)]
fn create_inner(channel: u32, cfg: *const c_void, ex: bool) -> Result<usize, i32> {
    if cfg.is_null() {
        return Err(errors::fail(&errors::OpenError::url("config is NULL")));
    }
    let host = host().ok_or(errors::BASS_ERROR_INIT)?;
    let (Some(get_data), Some(get_info)) = (host.get_data, host.get_info) else {
        return Err(errors::BASS_ERROR_INIT);
    };
    let mut info = ChannelInfo {
        freq: 0,
        chans: 0,
        flags: 0,
        ctype: 0,
        origres: 0,
        plugin: 0,
        sample: 0,
        filename: std::ptr::null(),
    };
    // SAFETY: `info` is a writable BASS_CHANNELINFO; any handle value is
    // safe (BASS fails an invalid one).
    if unsafe { get_info(channel, &mut info) } == 0 {
        errors::set_text(&format!(
            "source channel {channel:#x} is not a valid BASS channel"
        ));
        return Err(BASS_ERROR_HANDLE);
    }
    // SAFETY: non-null; the API's contract is a readable struct of that kind.
    let raw = unsafe { read_output_config(cfg, ex) }.map_err(|e| errors::fail(&e))?;
    let oc = crate::output::validate(
        &raw,
        crate::output::ChannelFormat {
            freq: info.freq,
            chans: info.chans,
        },
    )
    .map_err(|e| errors::fail(&e))?;
    let reader = BassReader {
        get_data,
        handle: channel,
    };
    Ok(crate::output::insert(crate::output::Output::new(
        oc,
        Box::new(reader),
    )))
}

#[cfg(not(engine))]
fn create_inner(_channel: u32, _cfg: *const c_void, _ex: bool) -> Result<usize, i32> {
    errors::set_text("this build has no engine (no output)");
    Err(errors::BASS_ERROR_NOTAVAIL)
}

/// Starts output `id` on a short-lived thread of ours (see
/// `on_fresh_thread`; it inherits the caller's network namespace).
#[cfg(engine)]
fn start_inner(id: usize) -> Result<(), i32> {
    match on_fresh_thread(move || crate::output::with(id, |o| o.start())) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(errors::fail(&e)),
        None => Err(BASS_ERROR_HANDLE),
    }
}

#[cfg(not(engine))]
fn start_inner(_id: usize) -> Result<(), i32> {
    Err(BASS_ERROR_HANDLE)
}

/// The counters of output `id`, `None` for an unknown handle.
#[cfg(engine)]
fn stats_inner(id: usize) -> Option<OutputStatsC> {
    crate::output::with(id, |o| {
        let s = o.stats();
        OutputStatsC {
            packets_sent: s.packets_sent,
            samples_sent: s.samples_sent,
            send_errors: s.send_errors,
            underruns: s.underruns,
        }
    })
}

#[cfg(not(engine))]
fn stats_inner(_id: usize) -> Option<OutputStatsC> {
    None
}

/// (running, ppm × 1000) of output `id`, `None` for an unknown handle.
#[cfg(engine)]
fn state_inner(id: usize) -> Option<(bool, i32)> {
    crate::output::with(id, |o| (o.is_running(), o.ppm_x1000()))
}

#[cfg(not(engine))]
fn state_inner(_id: usize) -> Option<(bool, i32)> {
    None
}

/// Stops output `id`; `false` for an unknown handle.
#[cfg(engine)]
fn stop_inner(id: usize) -> bool {
    crate::output::with(id, |o| o.stop()).is_some()
}

#[cfg(not(engine))]
fn stop_inner(_id: usize) -> bool {
    false
}

/// Stops and frees output `id`; `false` for an unknown handle.
#[cfg(engine)]
fn free_inner(id: usize) -> bool {
    crate::output::remove(id)
}

#[cfg(not(engine))]
fn free_inner(_id: usize) -> bool {
    false
}

/// Runs `f` under `catch_unwind` and maps its result to BASS's error:
/// `Ok` → BASS_OK; `Err(code)` → that code; a panic → BASS_ERROR_UNKNOWN.
fn guarded<T>(fail: T, f: impl FnOnce() -> Result<T, i32>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            set_error(errors::BASS_OK);
            v
        }
        Ok(Err(code)) => {
            set_error(code);
            fail
        }
        Err(_) => {
            errors::set_text("internal error (panic) in an output call");
            set_error(errors::BASS_ERROR_UNKNOWN);
            fail
        }
    }
}

/// `void *BASS_AES67_OutputCreate(DWORD channel, const BASS_AES67_OUTPUT_CONFIG *cfg)`:
/// an output reading `channel` (any BASS channel, float data pulled with
/// `BASS_ChannelGetData`), stopped. NULL on error (`BASS_ErrorGetCode`, text
/// in `BASS_AES67_GetLastErrorText` naming the field).
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputCreate(channel: u32, cfg: *const c_void) -> *mut c_void {
    guarded(std::ptr::null_mut(), || {
        create_inner(channel, cfg, false).map(to_handle)
    })
}

/// `void *BASS_AES67_OutputCreateEx(DWORD channel, const BASS_AES67_OUTPUT_CONFIG_EX *cfg)`:
/// as `BASS_AES67_OutputCreate`, with encoding, TTL and SAP name.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputCreateEx(channel: u32, cfg: *const c_void) -> *mut c_void {
    guarded(std::ptr::null_mut(), || {
        create_inner(channel, cfg, true).map(to_handle)
    })
}

/// `BOOL BASS_AES67_OutputStart(void *h)`: opens the socket (in the calling
/// thread's network namespace) and starts sending. FALSE on error.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputStart(h: *mut c_void) -> i32 {
    guarded(0, || start_inner(from_handle(h)).map(|()| 1))
}

/// `BOOL BASS_AES67_OutputStop(void *h)`: stops sending (SAP deletions
/// sent); the output can be started again.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputStop(h: *mut c_void) -> i32 {
    guarded(0, || {
        if stop_inner(from_handle(h)) {
            Ok(1)
        } else {
            Err(BASS_ERROR_HANDLE)
        }
    })
}

/// `BOOL BASS_AES67_OutputIsRunning(void *h)`.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputIsRunning(h: *mut c_void) -> i32 {
    guarded(0, || {
        state_inner(from_handle(h))
            .map(|(r, _)| i32::from(r))
            .ok_or(BASS_ERROR_HANDLE)
    })
}

/// `int BASS_AES67_OutputGetPPM(void *h)`: the media clock's rate
/// correction against the local clock, ppm × 1000 (0 on the System clock or
/// for an unknown handle).
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputGetPPM(h: *mut c_void) -> i32 {
    guarded(0, || {
        state_inner(from_handle(h))
            .map(|(_, p)| p)
            .ok_or(BASS_ERROR_HANDLE)
    })
}

/// `BOOL BASS_AES67_OutputGetStats(void *h, BASS_AES67_OUTPUT_STATS *stats)`.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputGetStats(h: *mut c_void, stats: *mut c_void) -> i32 {
    guarded(0, || {
        if stats.is_null() {
            return Err(errors::BASS_ERROR_ILLPARAM);
        }
        let s = stats_inner(from_handle(h)).ok_or(BASS_ERROR_HANDLE)?;
        // SAFETY: `stats` is the caller's writable BASS_AES67_OUTPUT_STATS.
        unsafe { *(stats as *mut OutputStatsC) = s };
        Ok(1)
    })
}

/// `BOOL BASS_AES67_OutputFree(void *h)`: stops and frees the output.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported by name (no_mangle)
pub extern "system" fn BASS_AES67_OutputFree(h: *mut c_void) -> i32 {
    guarded(0, || {
        if free_inner(from_handle(h)) {
            Ok(1)
        } else {
            Err(BASS_ERROR_HANDLE)
        }
    })
}
