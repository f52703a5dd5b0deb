//! Secrets at rest and in memory: credentials the server must keep in a form it can use again
//! (BMC passwords now, SMTP credentials later), as opposed to user passwords, which are only hashed.
//!
//! [`SecretBox`] seals a value with AES-256-GCM under one 32-byte key kept in a file (created once,
//! mode 0600, like the session key; servers sharing one database must share it). Each sealed value
//! is bound to a *context* (e.g. `oobm-password:<host id>`) as associated data, so a ciphertext
//! copied to another row does not open there. [`Secret`] holds a clear value in memory: it prints as
//! `••••` in `Debug` and `Display`, is never serialized, and is wiped when dropped.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use std::path::Path;
use zeroize::Zeroizing;

/// What a secret looks like wherever it would otherwise be printed.
pub const MASK: &str = "••••";

/// The format tag of sealed values, so a later key rotation or algorithm can tell old ones apart.
const SEALED_PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 12;

/// A clear secret in memory. Its `Debug` and `Display` print [`MASK`], so it can sit in structs that
/// are logged or formatted into errors without leaking; read it only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The clear value, for the one place that must hand it on (a BMC login, an SMTP AUTH).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes (limits such as IPMI's 20-byte passwords are in bytes).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secrets key file {path} cannot be used: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("cannot read or write the secrets key file {path}")]
    KeyIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encrypt a secret")]
    Seal,
    /// Wrong key, another row's value, or a damaged value: the message never says more.
    #[error("a stored secret cannot be decrypted (was the secrets key changed?)")]
    Open,
    #[error("a stored secret is not in a known format")]
    Format,
}

/// Seals and opens secrets with the server's AES-256-GCM key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(••••)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> SecretBox {
        SecretBox { cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)) }
    }

    /// The key kept in `path` (64 hex digits), created with a random key (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<SecretBox, SecretError> {
        let shown = path.display().to_string();
        let io = |source| SecretError::KeyIo { path: shown.clone(), source };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Zeroizing::new(Aes256Gcm::generate_key(&mut OsRng));
                let text = Zeroizing::new(hex::encode(&key[..]));
                match write_private_file(path, &text) {
                    Ok(()) => text,
                    // Another server created it first: use theirs.
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Zeroizing::new(std::fs::read_to_string(path).map_err(io)?)
                    }
                    Err(error) => return Err(io(error)),
                }
            }
            Err(error) => return Err(io(error)),
        };
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| SecretError::KeyFile {
            path: shown.clone(),
            reason: "it must hold 64 hex digits (a 32-byte key)".into(),
        })?);
        let key: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| SecretError::KeyFile {
            path: shown.clone(),
            reason: format!("it holds {} bytes; AES-256 needs exactly 32", bytes.len()),
        })?;
        Ok(SecretBox::from_key(key))
    }

    /// Encrypt `secret` for storage, bound to `context` (the same context opens it).
    pub fn seal(&self, secret: &Secret, context: &str) -> Result<String, SecretError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: secret.expose().as_bytes(), aad: context.as_bytes() })
            .map_err(|_| SecretError::Seal)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", hex::encode(bytes)))
    }

    /// Decrypt what [`SecretBox::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, SecretError> {
        let hex_text = sealed.strip_prefix(SEALED_PREFIX).ok_or(SecretError::Format)?;
        let bytes = hex::decode(hex_text).map_err(|_| SecretError::Format)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SecretError::Format);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SecretError::Format)?;
        let clear = Zeroizing::new(
            self.cipher
                .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
                .map_err(|_| SecretError::Open)?,
        );
        let text = std::str::from_utf8(&clear).map_err(|_| SecretError::Open)?;
        Ok(Secret::new(text))
    }
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret}"), MASK);
        assert_eq!(format!("{secret:?}"), MASK);
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Secret,
        }
        let printed = format!("{:?}", Holder { password: secret.clone() });
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let sealer = SecretBox::from_key(&[7u8; 32]);
        let secret = Secret::new("bmc-password");
        let sealed = sealer.seal(&secret, "oobm-password:a").unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains("bmc-password"));
        assert_ne!(sealed, sealer.seal(&secret, "oobm-password:a").unwrap(), "a fresh nonce every time");
        assert_eq!(sealer.open(&sealed, "oobm-password:a").unwrap().expose(), "bmc-password");
        assert!(matches!(sealer.open(&sealed, "oobm-password:b"), Err(SecretError::Open)));
        let other = SecretBox::from_key(&[8u8; 32]);
        assert!(matches!(other.open(&sealed, "oobm-password:a"), Err(SecretError::Open)));
        let mut damaged = sealed.clone();
        damaged.replace_range(10..12, if &sealed[10..12] == "00" { "11" } else { "00" });
        assert!(matches!(sealer.open(&damaged, "oobm-password:a"), Err(SecretError::Open)));
        assert!(matches!(sealer.open("plain", "oobm-password:a"), Err(SecretError::Format)));
    }

    #[test]
    fn the_key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let first = SecretBox::load_or_create(&path).unwrap();
        let sealed = first.seal(&Secret::new("x"), "c").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let second = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(second.open(&sealed, "c").unwrap().expose(), "x");
        assert_eq!(format!("{second:?}"), "SecretBox(••••)");

        std::fs::write(&path, "abcd").unwrap();
        let error = SecretBox::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("secrets.key") && error.contains("32"), "{error}");
    }
}
