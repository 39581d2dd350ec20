//! The admin token `serve` generates when `http.admin_tokens` is empty, kept in
//! `http.token_file` so the API is locked out of the box and `centralino admin-token`
//! can hand the token to local scripts.
//!
//! Owns: which admin tokens are in force, and the token file (created with mode 0600,
//! reused while present and non-empty).
//! Must not touch: requests, the listener, the config file.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::{HttpConfig, MIN_TOKEN_CHARS};

/// Why no admin token could be had.
#[derive(Debug, Error)]
pub enum TokenFileError {
    #[error("{}: cannot read the admin token: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: cannot write the admin token: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: not a token (at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces); fix it, or empty it to have a new one generated", path.display())]
    NotAToken { path: PathBuf },
    #[error("no admin token: http.admin_tokens is empty and {} does not exist yet; start `centralino serve` once (it creates the file) or set http.admin_tokens", path.display())]
    Missing { path: PathBuf },
}

/// The admin tokens `serve` accepts: the configured ones, else the token file's, which is
/// created now when missing or empty.
pub fn admin_tokens(http: &HttpConfig) -> Result<Vec<String>, TokenFileError> {
    if !http.admin_tokens.is_empty() {
        return Ok(http.admin_tokens.clone());
    }
    Ok(vec![load_or_create(&http.token_file)?])
}

/// The admin token to print for `centralino admin-token`: the first configured one, else
/// the token file's. Never creates the file (that is `serve`'s job, where the service runs).
pub fn current(http: &HttpConfig) -> Result<String, TokenFileError> {
    if let Some(token) = http.admin_tokens.first() {
        return Ok(token.clone());
    }
    read(&http.token_file)?.ok_or_else(|| TokenFileError::Missing { path: http.token_file.clone() })
}

/// The file's token; `None` when the file is absent or empty.
fn read(path: &Path) -> Result<Option<String>, TokenFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TokenFileError::Read { path: path.to_path_buf(), source }),
    };
    let token = text.trim();
    if token.is_empty() {
        return Ok(None);
    }
    if token.chars().count() < MIN_TOKEN_CHARS || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(TokenFileError::NotAToken { path: path.to_path_buf() });
    }
    Ok(Some(token.to_string()))
}

fn load_or_create(path: &Path) -> Result<String, TokenFileError> {
    if let Some(token) = read(path)? {
        warn_if_readable_by_others(path);
        return Ok(token);
    }
    let token = generate();
    write_private(path, &token).map_err(|source| TokenFileError::Write { path: path.to_path_buf(), source })?;
    tracing::info!(file = %path.display(), "generated an admin token for the HTTP API (`centralino admin-token` prints it)");
    Ok(token)
}

/// 32 random bytes, hex.
fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    // Driver site: a secret comes from the OS's generator, never from a seeded one.
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes `token` readable by this user only, creating the parent folder.
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // `mode` applies only to a new file: an empty one left by someone keeps its own,
        // so it is narrowed before the secret goes in.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        write_all(file, token)
    }
    #[cfg(not(unix))]
    {
        write_all(options.open(path)?, token)
    }
}

fn write_all(mut file: std::fs::File, token: &str) -> std::io::Result<()> {
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "the admin token file is readable by other users: chmod 600 it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(token_file: PathBuf, admin: &[&str]) -> HttpConfig {
        HttpConfig {
            listen: "127.0.0.1:0".into(),
            admin_tokens: admin.iter().map(|t| t.to_string()).collect(),
            read_tokens: Vec::new(),
            token_file,
            public_metrics: true,
            allowed_hosts: Vec::new(),
        }
    }

    #[test]
    fn a_token_is_generated_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = http(dir.path().join("nested/data/admin.token"), &[]);
        assert!(matches!(current(&config), Err(TokenFileError::Missing { .. })));
        let first = admin_tokens(&config).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].len(), 64);
        assert!(first[0].chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&config.token_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(admin_tokens(&config).unwrap(), first, "reused");
        assert_eq!(current(&config).unwrap(), first[0]);
    }

    #[test]
    fn an_empty_file_gets_a_new_token_and_a_bad_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "\n").unwrap();
        let config = http(path.clone(), &[]);
        let token = admin_tokens(&config).unwrap().remove(0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{token}\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "narrowed");
        }
        std::fs::write(&path, "short\n").unwrap();
        let e = admin_tokens(&config).unwrap_err();
        assert!(matches!(e, TokenFileError::NotAToken { .. }), "{e}");
    }

    #[test]
    fn configured_tokens_win_and_no_file_is_made_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = http(dir.path().join("admin.token"), &["configured-0123456789", "second-0123456789abc"]);
        assert_eq!(admin_tokens(&config).unwrap(), vec!["configured-0123456789", "second-0123456789abc"]);
        assert_eq!(current(&config).unwrap(), "configured-0123456789");
        assert!(!config.token_file.exists());
    }
}
