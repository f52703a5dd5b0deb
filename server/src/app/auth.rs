//! Accounts and sessions: argon2id password hashes, short-lived HS256 JWTs, the first admin account.

use super::AppError;
use crate::db::{Db, UserRecord};
use api::UserId;
use api::v1::Role;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How long a session token lives; the console refreshes it while in use.
pub const DEFAULT_SESSION_TTL: Duration = Duration::minutes(15);

pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    // Argon2::default() is argon2id, version 0x13, with OWASP's recommended minimum cost.
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AppError::Internal(format!("cannot hash a password: {error}").into()))
}

pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A random password for generated accounts: 20 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: UserId,
    /// The user's token version when issued; bumping it revokes every older token.
    pub ver: i64,
    pub iat: i64,
    pub exp: i64,
}

/// The HS256 key that signs session tokens.
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl: Duration,
}

impl SessionKeys {
    pub fn from_secret(secret: &[u8], ttl: Duration) -> Self {
        SessionKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), ttl }
    }

    /// The key kept in the data directory, created once (mode 0600) on first start.
    pub fn load_or_create(path: &Path, ttl: Duration) -> std::io::Result<Self> {
        let secret = match std::fs::read_to_string(path) {
            Ok(text) => hex::decode(text.trim()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not hex", path.display()))
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = rand::thread_rng().r#gen();
                write_private_file(path, &hex::encode(secret))?;
                secret.to_vec()
            }
            Err(error) => return Err(error),
        };
        if secret.len() < 32 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds a key shorter than 32 bytes", path.display()),
            ));
        }
        Ok(Self::from_secret(&secret, ttl))
    }

    pub fn issue(&self, user: &UserRecord, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), AppError> {
        let expires_at = now + self.ttl;
        let claims =
            Claims { sub: user.id, ver: user.token_version, iat: now.timestamp(), exp: expires_at.timestamp() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)?;
        Ok((token, expires_at))
    }

    /// Signature and expiry checked; the caller still checks the user and the token version.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok().map(|data| data.claims)
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
    file.write_all(contents.as_bytes())
}

/// On first start (no user at all), create `admin`. Answers the password when one was generated or
/// taken from the environment, so the caller can show it once.
pub async fn bootstrap_admin(db: &Db, preset_password: Option<String>) -> Result<Option<String>, AppError> {
    if db.user_count().await? > 0 {
        return Ok(None);
    }
    let password = preset_password.unwrap_or_else(random_password);
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(AppError::internal)??
    };
    db.user_insert("admin", &hash, Role::PoolAdmin).await?;
    Ok(Some(password))
}

/// Check a username and password. The same message for an unknown user and a wrong password, and
/// the same work (a hash verification) for both, so neither answer nor timing tells which.
pub async fn authenticate(db: &Db, username: &str, password: &str) -> Result<UserRecord, AppError> {
    const WRONG: &str = "wrong username or password";
    // A real argon2id hash of a random string, verified when the user does not exist.
    static DECOY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let user = db.user_fetch_by_name(username).await?;
    let stored = match &user {
        Some(user) => user.password_hash.clone(),
        None => DECOY_HASH.get_or_init(|| hash_password(&random_password()).unwrap_or_default()).clone(),
    };
    let password = password.to_owned();
    let matches =
        tokio::task::spawn_blocking(move || verify_password(&password, &stored)).await.map_err(AppError::internal)?;
    match user {
        Some(user) if matches && !user.disabled => Ok(user),
        Some(user) if matches && user.disabled => Err(AppError::Forbidden("this account is disabled".into())),
        _ => Err(AppError::Unauthorized(WRONG.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn tokens_verify_until_they_expire_and_only_with_their_key() {
        let keys = SessionKeys::from_secret(&[7u8; 32], Duration::minutes(15));
        let user = UserRecord {
            id: UserId::new_random(),
            username: "u".into(),
            password_hash: String::new(),
            role: Role::ReadOnly,
            disabled: false,
            token_version: 3,
            created_at: 0,
        };
        let (token, _) = keys.issue(&user, Utc::now()).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.ver), (user.id, 3));

        let (old, _) = keys.issue(&user, Utc::now() - Duration::minutes(16)).unwrap();
        assert!(keys.verify(&old).is_none(), "an expired token must be refused");

        let other = SessionKeys::from_secret(&[8u8; 32], Duration::minutes(15));
        assert!(other.verify(&token).is_none(), "a token signed with another key must be refused");
    }

    #[test]
    fn session_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.key");
        let first = SessionKeys::load_or_create(&path, DEFAULT_SESSION_TTL).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let second = SessionKeys::load_or_create(&path, DEFAULT_SESSION_TTL).unwrap();
        let user = UserRecord {
            id: UserId::new_random(),
            username: "u".into(),
            password_hash: String::new(),
            role: Role::ReadOnly,
            disabled: false,
            token_version: 0,
            created_at: 0,
        };
        let (token, _) = first.issue(&user, Utc::now()).unwrap();
        assert!(second.verify(&token).is_some());
    }
}
