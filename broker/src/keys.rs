//! The broker's key file: an encrypted Ethereum JSON keystore (v3, scrypt; geth's and foundry's
//! format), whose password comes from a file or an environment variable, or plain hex of the
//! secp256k1 secret (tests and demos; the broker warns). Written with owner-only permissions.

use std::path::{Path, PathBuf};

use supra_channel::sign::Keypair;

/// Why a key could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source} (make one with `supra keygen --out {path}`)")]
    Read { path: String, source: std::io::Error },
    #[error("key file {0} does not hold 32 bytes of hex")]
    Format(String),
    #[error("key file {0} holds an invalid secp256k1 secret")]
    Invalid(String),
    #[error("{0} exists; refusing to overwrite a key (use --force)")]
    Exists(String),
    #[error("cannot write key file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("key file {0} is an encrypted keystore: give its password (key_password_file or key_password_env)")]
    NoPassword(String),
    #[error("cannot decrypt keystore {path}: {reason}")]
    Decrypt { path: String, reason: String },
    #[error("keystore password: {0}")]
    Password(String),
}

/// Where the password of an encrypted keystore comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyPassword {
    /// None given: the key file must be plain hex.
    #[default]
    None,
    /// The first line of this file.
    File(PathBuf),
    /// This environment variable.
    Env(String),
}

impl KeyPassword {
    /// The password, if one is configured.
    pub fn read(&self) -> Result<Option<String>, KeyFileError> {
        match self {
            KeyPassword::None => Ok(None),
            KeyPassword::File(path) => std::fs::read_to_string(path)
                .map(|text| Some(text.lines().next().unwrap_or("").to_owned()))
                .map_err(|e| KeyFileError::Password(format!("cannot read {}: {e}", path.display()))),
            KeyPassword::Env(name) => std::env::var(name)
                .map(Some)
                .map_err(|_| KeyFileError::Password(format!("environment variable {name} is not set"))),
        }
    }
}

/// Whether `text` is a JSON keystore rather than hex.
fn is_keystore(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Reads a key file, plain hex or an encrypted keystore (decrypted with `password`). Logs a warning
/// for plain hex.
pub fn load_any(path: &Path, password: &KeyPassword) -> Result<(Keypair, [u8; 32]), KeyFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: shown.clone(), source })?;
    if !is_keystore(&text) {
        if *password != KeyPassword::None {
            return Err(KeyFileError::Password(format!("a password is configured but {shown} is plain hex, not a keystore")));
        }
        tracing::warn!("key file {shown} holds the broker's key in plain hex: prefer an encrypted keystore (`supra keygen --keystore`)");
        return load(path);
    }
    let password = password.read()?.ok_or_else(|| KeyFileError::NoPassword(shown.clone()))?;
    let bytes = eth_keystore::decrypt_key(path, password).map_err(|e| KeyFileError::Decrypt {
        path: shown.clone(),
        reason: match e {
            eth_keystore::KeystoreError::MacMismatch => "wrong password (MAC mismatch)".into(),
            other => other.to_string(),
        },
    })?;
    let secret: [u8; 32] = bytes.try_into().map_err(|_| KeyFileError::Format(shown.clone()))?;
    let key = Keypair::from_secret_bytes(&secret).map_err(|_| KeyFileError::Invalid(shown))?;
    Ok((key, secret))
}

/// Writes `secret` as an encrypted keystore (scrypt) at `path`, readable by the owner only.
pub fn write_keystore(path: &Path, secret: &[u8; 32], password: &str, force: bool) -> Result<(), KeyFileError> {
    let shown = path.display().to_string();
    if path.exists() && !force {
        return Err(KeyFileError::Exists(shown));
    }
    let failed = |e: String| KeyFileError::Write { path: shown.clone(), source: std::io::Error::other(e) };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| failed("not a file name".into()))?;
    let _ = std::fs::remove_file(path);
    // Created empty and owner-only first, so that the secret is never readable by others.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|source| KeyFileError::Write { path: shown.clone(), source })?;
    eth_keystore::encrypt_key(dir, &mut rand08::rngs::OsRng, secret, password, Some(name)).map_err(|e| failed(e.to_string()))?;
    Ok(())
}

/// Parses `0x…` or bare hex (64 digits) into a key pair.
pub fn parse(text: &str, origin: &str) -> Result<Keypair, KeyFileError> {
    let hex = text.trim().trim_start_matches("0x");
    let bytes: [u8; 32] = hex::decode(hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyFileError::Format(origin.into()))?;
    Keypair::from_secret_bytes(&bytes).map_err(|_| KeyFileError::Invalid(origin.into()))
}

/// Reads a key file.
pub fn load(path: &Path) -> Result<(Keypair, [u8; 32]), KeyFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: shown.clone(), source })?;
    let key = parse(&text, &shown)?;
    let hex = text.trim().trim_start_matches("0x");
    let mut secret = [0u8; 32];
    hex::decode_to_slice(hex, &mut secret).map_err(|_| KeyFileError::Format(shown))?;
    Ok((key, secret))
}

/// Writes `secret` as hex to `path`, readable by the owner only.
pub fn write(path: &Path, secret: &[u8; 32], force: bool) -> Result<(), KeyFileError> {
    let shown = path.display().to_string();
    if path.exists() && !force {
        return Err(KeyFileError::Exists(shown));
    }
    write_private(path, &format!("0x{}\n", hex::encode(secret))).map_err(|source| KeyFileError::Write { path: shown, source })
}

/// Writes `text` to `path` (replacing it), readable by the owner only, and syncs it.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A fresh random key.
pub fn generate() -> ([u8; 32], Keypair) {
    loop {
        let secret: [u8; 32] = rand::random();
        if let Ok(key) = Keypair::from_secret_bytes(&secret) {
            return (secret, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clear_errors() {
        let dir = std::env::temp_dir().join(format!("supra-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        let _ = std::fs::remove_file(&path);
        let (secret, key) = generate();
        write(&path, &secret, false).unwrap();
        assert_eq!(load(&path).unwrap().0.address(), key.address());
        assert!(matches!(write(&path, &secret, false), Err(KeyFileError::Exists(_))));
        std::fs::write(&path, "nonsense").unwrap();
        assert!(matches!(load(&path), Err(KeyFileError::Format(_))));
        std::fs::write(&path, format!("0x{}", "00".repeat(32))).unwrap();
        assert!(matches!(load(&path), Err(KeyFileError::Invalid(_))));
        assert!(matches!(load(&dir.join("missing")), Err(KeyFileError::Read { .. })));

        let store = dir.join("ks.json");
        let pw = dir.join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        write_keystore(&store, &secret, "hunter2", false).unwrap();
        let (loaded, raw) = load_any(&store, &KeyPassword::File(pw.clone())).unwrap();
        assert_eq!((loaded.address(), raw), (key.address(), secret));
        std::fs::write(&pw, "hunter3").unwrap();
        let wrong = load_any(&store, &KeyPassword::File(pw)).unwrap_err();
        assert!(wrong.to_string().contains("wrong password"), "{wrong}");
        assert!(matches!(load_any(&store, &KeyPassword::None), Err(KeyFileError::NoPassword(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
