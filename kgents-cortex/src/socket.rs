//! The Unix socket: where it is (`$KGENTS_CORTEX_SOCKET`, else `~/.kgents/cortex.sock`), and
//! binding it safely: mode 0600 in a directory created 0700; a socket left by a crashed daemon
//! is replaced only when nothing answers on it; a live daemon, or a file that is not a socket,
//! is refused with a message saying what to do. [`SocketFile`] removes the socket on exit.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::error::{Error, Result};

/// The environment variable naming the socket.
pub const SOCKET_ENV: &str = "KGENTS_CORTEX_SOCKET";

/// The socket path from `env` (the value of [`SOCKET_ENV`]) or `home`: pure, for tests.
pub fn resolve_path(
    env: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    match env.filter(|v| !v.is_empty()) {
        Some(path) => Ok(PathBuf::from(path)),
        None => home
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".kgents").join("cortex.sock"))
            .ok_or(Error::NoSocketPath),
    }
}

/// The default socket path (`$KGENTS_CORTEX_SOCKET`, else `~/.kgents/cortex.sock`).
///
/// # Errors
/// [`Error::NoSocketPath`] when neither is set.
pub fn default_path() -> Result<PathBuf> {
    resolve_path(std::env::var_os(SOCKET_ENV), std::env::var_os("HOME"))
}

/// What is at a socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing.
    Nothing,
    /// A socket nobody answers on (a crashed daemon's).
    Stale,
    /// A daemon answers.
    Live,
    /// Something that is not a socket.
    Other,
}

/// Looks at `path` (and tries to connect when it is a socket).
pub fn occupant(path: &Path) -> Occupant {
    match std::fs::symlink_metadata(path) {
        Err(_) => Occupant::Nothing,
        Ok(meta) if !meta.file_type().is_socket() => Occupant::Other,
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Occupant::Live,
            Err(_) => Occupant::Stale,
        },
    }
}

/// The bound socket file, removed when dropped.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (see the [module docs](self)). Needs a tokio runtime.
///
/// # Errors
/// [`Error::AlreadyRunning`], [`Error::NotASocket`], or the I/O error met.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        // Only the owner may reach what is inside (the socket is 0600 too, but this closes
        // the moment between bind and chmod).
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("restricting {}", dir.display()), e))?;
    }
    match occupant(path) {
        Occupant::Nothing => {}
        Occupant::Live => {
            return Err(Error::AlreadyRunning {
                path: path.to_owned(),
            });
        }
        Occupant::Other => {
            return Err(Error::NotASocket {
                path: path.to_owned(),
            });
        }
        Occupant::Stale => {
            tracing::info!(path = %path.display(), "replacing a stale Cortex socket");
            std::fs::remove_file(path).map_err(|e| {
                Error::io(format!("removing the stale socket {}", path.display()), e)
            })?;
        }
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io(format!("binding {}", path.display()), e))?;
    let file = SocketFile {
        path: path.to_owned(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("restricting {} to mode 0600", path.display()), e))?;
    Ok((listener, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_beats_home_and_neither_is_an_error() {
        assert_eq!(
            resolve_path(Some("/run/c.sock".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(
            resolve_path(Some("".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/home/u/.kgents/cortex.sock")
        );
        assert!(matches!(resolve_path(None, None), Err(Error::NoSocketPath)));
    }

    #[tokio::test]
    async fn a_live_socket_is_refused_a_stale_one_replaced_and_a_file_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("cortex.sock");
        let (listener, file) = bind(&path).expect("binds");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(occupant(&path), Occupant::Live);
        let error = bind(&path).expect_err("a second daemon");
        assert!(matches!(error, Error::AlreadyRunning { .. }));
        assert!(error.to_string().contains("already listening"), "{error}");
        // A crash: the listener is gone, the file stays.
        drop(listener);
        std::mem::forget(file);
        assert_eq!(occupant(&path), Occupant::Stale);
        let (_listener, _file) = bind(&path).expect("the stale socket is replaced");
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "keep me").unwrap();
        assert!(matches!(bind(&other), Err(Error::NotASocket { .. })));
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep me");
    }
}
