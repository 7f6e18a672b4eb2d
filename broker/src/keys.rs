//! The broker's key file: hex of a secp256k1 secret, written with owner-only permissions.

use std::path::Path;

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
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        writeln!(file, "0x{}", hex::encode(secret))?;
        file.sync_all()
    };
    write().map_err(|source| KeyFileError::Write { path: shown, source })
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
