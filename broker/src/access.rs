//! Who may use the embedded MQTT broker: client logins (username and hashed password) and per-user
//! topic rules for publishing and subscribing, as in mosquitto's `password_file` and `acl_file`.
//!
//! Passwords are stored in mosquitto_passwd's format, `user:$7$iterations$salt$hash` (PBKDF2-HMAC-
//! SHA512, standard base64), so a mosquitto password file works unchanged; the older `$6$`
//! (one SHA-512 of password and salt) is read too. They come from `mqtt.password_file` and/or
//! `[[mqtt.user]]` entries in the TOML; `supra passwd FILE USER` writes one.
//!
//! Rules are `[[mqtt.acl]]` entries: `user` (a name, or `"*"` for every client, anonymous ones
//! included), `publish` and `subscribe` (topic filters with MQTT wildcards). With no rule at all,
//! every client may publish and subscribe everywhere; with one or more, what no rule allows is
//! refused. A subscription is allowed when its filter is covered by an allowed filter
//! (`sensors/+/temp` by `sensors/#`), a publish when its topic matches one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use sha2::{Digest, Sha512};

use crate::topics::{check_filter, covers, matches};

/// Iterations of PBKDF2-HMAC-SHA512 in a hash `supra passwd` writes. mosquitto_passwd writes 101
/// by default; more costs a guesser more and a CONNECT a few milliseconds.
pub const PASSWD_ITERATIONS: u32 = 20_000;
const SALT_BYTES: usize = 12;
const HASH_BYTES: usize = 64;

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 { iterations: u32, salt: Vec<u8>, hash: Vec<u8> },
    /// `$6$`: SHA-512 of password then salt (mosquitto before 2.0).
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Parses `$7$iterations$salt$hash` or `$6$salt$hash`.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let parts: Vec<&str> = text.trim().split('$').collect();
        let b64 = |s: &str, what: &str| B64.decode(s).map_err(|_| format!("the {what} is not base64"));
        match parts.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations.parse().map_err(|_| format!("`{iterations}` is not an iteration count"))?;
                if iterations == 0 {
                    return Err("zero iterations".into());
                }
                Ok(PasswordHash::Pbkdf2 { iterations, salt: b64(salt, "salt")?, hash: b64(hash, "hash")? })
            }
            ["", "6", salt, hash] => Ok(PasswordHash::Sha512 { salt: b64(salt, "salt")?, hash: b64(hash, "hash")? }),
            _ => Err("not a mosquitto_passwd hash ($7$iterations$salt$hash or $6$salt$hash; make one with `supra passwd`)".into()),
        }
    }

    /// A fresh `$7$` hash of `password`.
    pub fn new(password: &str) -> PasswordHash {
        let salt: [u8; SALT_BYTES] = rand::random();
        let mut hash = vec![0u8; HASH_BYTES];
        pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, PASSWD_ITERATIONS, &mut hash);
        PasswordHash::Pbkdf2 { iterations: PASSWD_ITERATIONS, salt: salt.to_vec(), hash }
    }

    /// Whether `password` is the one hashed (compared in constant time).
    pub fn verify(&self, password: &[u8]) -> bool {
        let (computed, expected) = match self {
            PasswordHash::Pbkdf2 { iterations, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                (out, hash)
            }
            PasswordHash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                (digest.finalize().to_vec(), hash)
            }
        };
        subtle::ConstantTimeEq::ct_eq(computed.as_slice(), expected.as_slice()).into()
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordHash::Pbkdf2 { iterations, salt, hash } => write!(f, "$7${iterations}${}${}", B64.encode(salt), B64.encode(hash)),
            PasswordHash::Sha512 { salt, hash } => write!(f, "$6${}${}", B64.encode(salt), B64.encode(hash)),
        }
    }
}

/// Parses a mosquitto password file: `user:hash` lines; blank lines and `#` comments skipped.
pub fn parse_password_file(text: &str, origin: &str) -> Result<Vec<(String, PasswordHash)>, String> {
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line.split_once(':').ok_or_else(|| format!("{origin} line {}: expected user:hash", n + 1))?;
        let hash = PasswordHash::parse(hash).map_err(|e| format!("{origin} line {}: {e}", n + 1))?;
        users.push((user.to_owned(), hash));
    }
    Ok(users)
}

/// Adds or replaces `user` in the password file at `path` (created, owner-only, if missing).
pub fn set_password(path: &Path, user: &str, password: &str) -> Result<(), String> {
    if user.is_empty() || user.contains(':') {
        return Err(format!("`{user}` is not a user name (non-empty, no `:`)"));
    }
    let shown = path.display();
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    parse_password_file(&old, &shown.to_string())?;
    let entry = format!("{user}:{}", PasswordHash::new(password));
    let mut lines: Vec<String> = Vec::new();
    let mut replaced = false;
    for line in old.lines() {
        if line.split_once(':').is_some_and(|(u, _)| u == user) {
            lines.push(entry.clone());
            replaced = true;
        } else {
            lines.push(line.to_owned());
        }
    }
    if !replaced {
        lines.push(entry);
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    crate::keys::write_private(path, &text).map_err(|e| format!("cannot write {shown}: {e}"))
}

/// An inline `[[mqtt.user]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: String,
    /// A mosquitto_passwd hash (`supra passwd` prints one with `--print`).
    pub password_hash: String,
}

/// An `[[mqtt.acl]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// A user name, or `"*"` for every client (anonymous ones too).
    pub user: String,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub subscribe: Vec<String>,
}

/// The checked access rules the embedded broker enforces.
#[derive(Debug, Clone)]
pub struct Access {
    users: HashMap<String, PasswordHash>,
    allow_anonymous: bool,
    /// `None`: no rule configured, everything allowed.
    acl: Option<Vec<AclRule>>,
}

impl Default for Access {
    /// Open: anyone connects, publishes and subscribes (mosquitto's local-only default).
    fn default() -> Self {
        Access { users: HashMap::new(), allow_anonymous: true, acl: None }
    }
}

/// How a login went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Allowed,
    /// Unknown user or wrong password (CONNACK 4 / 0x86).
    BadCredentials,
    /// No username where one is required (CONNACK 5 / 0x87).
    NotAuthorized,
}

impl Access {
    /// Checks the `[mqtt]` settings `password_file` (already resolved against the config's
    /// directory), `allow_anonymous`, `[[mqtt.user]]` and `[[mqtt.acl]]`. Errors name the key.
    pub fn new(password_file: Option<&Path>, allow_anonymous: Option<bool>, user: &[RawUser], acl: &[AclRule]) -> Result<Access, (String, String)> {
        let mut users = HashMap::new();
        if let Some(path) = password_file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ("mqtt.password_file".to_owned(), format!("cannot read {shown}: {e}")))?;
            for (user, hash) in parse_password_file(&text, &shown).map_err(|e| ("mqtt.password_file".to_owned(), e))? {
                users.insert(user, hash);
            }
        }
        for (i, u) in user.iter().enumerate() {
            let key = format!("mqtt.user[{i}]");
            if u.name.is_empty() || u.name.contains(':') {
                return Err((format!("{key}.name"), format!("`{}` is not a user name (non-empty, no `:`)", u.name)));
            }
            let hash = PasswordHash::parse(&u.password_hash).map_err(|e| (format!("{key}.password_hash"), e))?;
            users.insert(u.name.clone(), hash);
        }
        if password_file.is_some() && user.is_empty() && users.is_empty() {
            return Err(("mqtt.password_file".into(), "holds no user".into()));
        }
        for (i, rule) in acl.iter().enumerate() {
            if rule.user.is_empty() {
                return Err((format!("mqtt.acl[{i}].user"), "empty (a user name, or \"*\" for every client)".into()));
            }
            for (field, filters) in [("publish", &rule.publish), ("subscribe", &rule.subscribe)] {
                for f in filters {
                    check_filter(f).map_err(|m| (format!("mqtt.acl[{i}].{field}"), m))?;
                }
            }
        }
        let allow_anonymous = allow_anonymous.unwrap_or(users.is_empty());
        let acl = (!acl.is_empty()).then(|| acl.to_vec());
        Ok(Access { users, allow_anonymous, acl })
    }

    /// Whether clients must log in.
    pub fn requires_login(&self) -> bool {
        !self.allow_anonymous
    }

    /// Whether anyone may do anything (no user, no rule): then rmqtt's listeners need not ask.
    pub fn is_open(&self) -> bool {
        self.allow_anonymous && self.users.is_empty() && self.acl.is_none()
    }

    /// Checks a CONNECT's username and password.
    pub fn login(&self, username: Option<&str>, password: Option<&[u8]>) -> Login {
        match username {
            None if self.allow_anonymous => Login::Allowed,
            None => Login::NotAuthorized,
            Some(user) => match self.users.get(user) {
                Some(hash) if hash.verify(password.unwrap_or_default()) => Login::Allowed,
                Some(_) => Login::BadCredentials,
                // A name nobody configured: accepted only where logins are not required at all.
                None if self.users.is_empty() && self.allow_anonymous => Login::Allowed,
                None => Login::BadCredentials,
            },
        }
    }

    fn rules<'a>(&'a self, username: Option<&'a str>) -> Option<impl Iterator<Item = &'a AclRule> + 'a> {
        let acl = self.acl.as_ref()?;
        Some(acl.iter().filter(move |r| r.user == "*" || Some(r.user.as_str()) == username))
    }

    /// Whether `username` may publish on `topic`.
    pub fn may_publish(&self, username: Option<&str>, topic: &str) -> bool {
        match self.rules(username) {
            None => true,
            Some(mut rules) => rules.any(|r| r.publish.iter().any(|f| matches(f, topic))),
        }
    }

    /// Whether `username` may subscribe to `filter` (every topic it matches must be allowed).
    pub fn may_subscribe(&self, username: Option<&str>, filter: &str) -> bool {
        // A shared subscription is allowed by its filter (`$share/group/filter`).
        let filter = match filter.strip_prefix("$share/").and_then(|rest| rest.split_once('/')) {
            Some((_, f)) => f,
            None => filter,
        };
        match self.rules(username) {
            None => true,
            Some(mut rules) => rules.any(|r| r.subscribe.iter().any(|allowed| covers(allowed, filter))),
        }
    }
}

/// `[mqtt.tls]`: an MQTT-over-TLS listener (both MQTT versions), beside the plain ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// The server's certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (PEM).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Resolves the paths against the config's directory and checks each file holds the PEM block
    /// it should, so that a mistake names its file before anything starts.
    pub fn resolve(&mut self, base: &Path) -> Result<(), (String, String)> {
        let check = |key: &str, path: &mut PathBuf, block: &str| -> Result<(), (String, String)> {
            *path = base.join(&*path);
            let text = std::fs::read_to_string(&*path)
                .map_err(|e| (format!("mqtt.tls.{key}"), format!("cannot read {}: {e}", path.display())))?;
            if !text.lines().any(|l| l.starts_with("-----BEGIN ") && l.contains(block)) {
                return Err((format!("mqtt.tls.{key}"), format!("{} holds no PEM {block}", path.display())));
            }
            Ok(())
        };
        check("cert_file", &mut self.cert_file, "CERTIFICATE")?;
        check("key_file", &mut self.key_file, "PRIVATE KEY")?;
        if let Some(ca) = &mut self.client_ca_file {
            check("client_ca_file", ca, "CERTIFICATE")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_round_trip() {
        let h = PasswordHash::new("s3cret");
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cres"));
        assert_eq!(PasswordHash::parse(&h.to_string()).unwrap(), h);
        // A $6$ hash: SHA-512(password || salt).
        let salt = b"0123456789ab";
        let mut d = Sha512::new();
        d.update(b"pw");
        d.update(salt);
        let six = format!("$6${}${}", B64.encode(salt), B64.encode(d.finalize()));
        assert!(PasswordHash::parse(&six).unwrap().verify(b"pw"));
        assert!(PasswordHash::parse("plain").is_err());
        assert!(PasswordHash::parse("$7$x$AA==$AA==").is_err());
    }

    #[test]
    fn logins_and_rules() {
        let users = [RawUser { name: "alice".into(), password_hash: PasswordHash::new("a").to_string() }];
        let acl = [AclRule { user: "alice".into(), publish: vec!["sensors/#".into()], subscribe: vec!["market/#".into()] }];
        let access = Access::new(None, None, &users, &acl).unwrap();
        assert_eq!(access.login(Some("alice"), Some(b"a")), Login::Allowed);
        assert_eq!(access.login(Some("alice"), Some(b"b")), Login::BadCredentials);
        assert_eq!(access.login(Some("bob"), Some(b"a")), Login::BadCredentials);
        assert_eq!(access.login(None, None), Login::NotAuthorized);
        assert!(access.may_publish(Some("alice"), "sensors/x"));
        assert!(!access.may_publish(Some("alice"), "market/x"));
        assert!(access.may_subscribe(Some("alice"), "market/+"));
        assert!(!access.may_subscribe(Some("alice"), "#"));
        assert!(!access.may_subscribe(Some("bob"), "market/x"));
        assert!(Access::default().may_publish(None, "x") && Access::default().login(None, None) == Login::Allowed);
    }
}
