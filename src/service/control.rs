//! The status socket: a Unix stream socket that answers every connection
//! with the current [`ServiceStatus`] as one JSON object and closes it
//! (`aes67 status` is its client, [`query`]).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::model::ServiceStatus;

/// The status socket server (one control thread, `aes67-status`).
pub struct StatusServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatusServer {
    /// Binds `path` (a stale socket file there is replaced; its folder is
    /// created) and serves `status`. Errors: the folder or socket cannot be
    /// made, naming the path.
    pub fn start(path: &Path, status: Arc<Mutex<ServiceStatus>>) -> Result<StatusServer, String> {
        let err = |e: std::io::Error| format!("status socket {}: {e}", path.display());
        if let Some(d) = path.parent()
            && !d.as_os_str().is_empty()
        {
            std::fs::create_dir_all(d).map_err(err)?;
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "status socket {}: another aes67 is serving it",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("aes67-status".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut c) = conn else { continue };
                    let _ = c.set_write_timeout(Some(Duration::from_secs(1)));
                    let snap = status.lock().map(|g| g.clone()).unwrap_or_default();
                    let body = serde_json::to_string(&snap).unwrap_or_else(|_| "{}".into());
                    let _ = c.write_all(body.as_bytes());
                    let _ = c.write_all(b"\n");
                }
            })
            .map_err(|e| format!("status socket: cannot start thread: {e}"))?;
        Ok(StatusServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads the status from the socket at `path`. Errors: no service there,
/// or an answer that is not a status, naming the path.
pub fn query(path: &Path) -> Result<ServiceStatus, String> {
    let mut c = UnixStream::connect(path).map_err(|e| {
        format!(
            "{}: {e} (is `aes67 run` running? see --socket)",
            path.display()
        )
    })?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut s = String::new();
    c.read_to_string(&mut s)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&s).map_err(|e| format!("{}: not an aes67 status: {e}", path.display()))
}
