//! Start-up configuration from a TOML file, `PARAPET_*` environment variables and flags (in rising
//! precedence). Every error names the key that is wrong and where it can be set.

use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// TOML configuration file; flags and PARAPET_* environment variables override its keys.
    #[arg(long, env = "PARAPET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080; port 0 picks a free one].
    #[arg(long, env = "PARAPET_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory for the SQLite database, the session signing key and the lock file [default: ./parapet-data].
    #[arg(long, env = "PARAPET_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` to use PostgreSQL (several servers may share it); default: SQLite in the data directory.
    #[arg(long, env = "PARAPET_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Directory with the built console (trunk's dist/); without it only the API is served.
    #[arg(long, env = "PARAPET_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,
    /// `human` (default) or `json` log lines.
    #[arg(long, env = "PARAPET_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Mark the session cookie Secure (when users reach the console over HTTPS).
    #[arg(long, env = "PARAPET_SECURE_COOKIES", value_name = "BOOL")]
    pub secure_cookies: Option<bool>,
    /// Lifetime of a session token in minutes [default: 15].
    #[arg(long, env = "PARAPET_SESSION_MINUTES", value_name = "MINUTES")]
    pub session_minutes: Option<i64>,
    /// Seconds a graceful VM stop may take before it is forced [default: 60].
    #[arg(long, env = "PARAPET_GRACEFUL_STOP_SECONDS", value_name = "SECONDS")]
    pub graceful_stop_seconds: Option<u64>,
    /// File holding the hex session signing key; servers sharing one database must share it
    /// [default: session.key in the data directory, created on first start].
    #[arg(long, env = "PARAPET_SESSION_KEY_FILE", value_name = "FILE")]
    pub session_key_file: Option<PathBuf>,
    /// File holding the hex AES-256 key that encrypts stored credentials (BMC passwords); servers
    /// sharing one database must share it [default: secrets.key in the data directory, created on first start].
    #[arg(long, env = "PARAPET_SECRETS_KEY_FILE", value_name = "FILE")]
    pub secrets_key_file: Option<PathBuf>,
}

/// The configuration file: the same keys as the flags, in snake_case.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    web_dir: Option<PathBuf>,
    log_format: Option<String>,
    secure_cookies: Option<bool>,
    session_minutes: Option<i64>,
    session_key_file: Option<PathBuf>,
    secrets_key_file: Option<PathBuf>,
    graceful_stop_seconds: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseChoice {
    /// The embedded default: a SQLite file inside the data directory.
    SqliteIn(PathBuf),
    Url(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseChoice,
    pub web_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    pub secure_cookies: bool,
    pub session_minutes: i64,
    pub session_key_file: PathBuf,
    pub secrets_key_file: PathBuf,
    pub graceful_stop_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration key `{key}` (flag --{flag}, environment {env}): {message}")]
    Invalid { key: &'static str, flag: &'static str, env: &'static str, message: String },
}

fn invalid(key: &'static str, message: String) -> ConfigError {
    let flag = match key {
        "listen" => "listen",
        "data_dir" => "data-dir",
        "database_url" => "database-url",
        "web_dir" => "web-dir",
        "log_format" => "log-format",
        "session_minutes" => "session-minutes",
        "session_key_file" => "session-key-file",
        "secrets_key_file" => "secrets-key-file",
        "graceful_stop_seconds" => "graceful-stop-seconds",
        _ => key,
    };
    let env = match key {
        "listen" => "PARAPET_LISTEN",
        "data_dir" => "PARAPET_DATA_DIR",
        "database_url" => "PARAPET_DATABASE_URL",
        "web_dir" => "PARAPET_WEB_DIR",
        "log_format" => "PARAPET_LOG_FORMAT",
        "session_minutes" => "PARAPET_SESSION_MINUTES",
        "session_key_file" => "PARAPET_SESSION_KEY_FILE",
        "secrets_key_file" => "PARAPET_SECRETS_KEY_FILE",
        "graceful_stop_seconds" => "PARAPET_GRACEFUL_STOP_SECONDS",
        _ => "-",
    };
    ConfigError::Invalid { key, flag, env, message }
}

impl ServerArgs {
    /// Merge flags/environment over the file over the defaults, and check every value.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text = self.listen.clone().or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid("listen", format!("{listen_text:?} is not an address with a port, like 127.0.0.1:8080"))
        })?;
        let data_dir = self.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("parapet-data"));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".into()));
        }
        let database = match self.database_url.clone().or(file.database_url) {
            None => DatabaseChoice::SqliteIn(data_dir.join("parapet.db")),
            Some(url)
                if url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:") =>
            {
                DatabaseChoice::Url(url)
            }
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or_default();
                return Err(invalid(
                    "database_url",
                    format!("scheme {scheme:?} is not supported; use postgres:// or sqlite:"),
                ));
            }
        };
        let web_dir = self.web_dir.clone().or(file.web_dir);
        if let Some(dir) = &web_dir
            && !dir.join("index.html").is_file()
        {
            return Err(invalid(
                "web_dir",
                format!("{} has no index.html (build the console with trunk first)", dir.display()),
            ));
        }
        let log_format = match self.log_format.clone().or(file.log_format).as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("log_format", format!("{other:?} is not one of: human, json"))),
        };
        let session_minutes = self.session_minutes.or(file.session_minutes).unwrap_or(15);
        if !(1..=24 * 60).contains(&session_minutes) {
            return Err(invalid("session_minutes", format!("{session_minutes} is outside 1..=1440")));
        }
        let session_key_file =
            self.session_key_file.clone().or(file.session_key_file).unwrap_or_else(|| data_dir.join("session.key"));
        let secrets_key_file =
            self.secrets_key_file.clone().or(file.secrets_key_file).unwrap_or_else(|| data_dir.join("secrets.key"));
        if secrets_key_file == session_key_file {
            return Err(invalid(
                "secrets_key_file",
                format!("{} is also the session key file; the two keys must differ", secrets_key_file.display()),
            ));
        }
        let graceful_stop_seconds = self.graceful_stop_seconds.or(file.graceful_stop_seconds).unwrap_or(60);
        if !(1..=3600).contains(&graceful_stop_seconds) {
            return Err(invalid("graceful_stop_seconds", format!("{graceful_stop_seconds} is outside 1..=3600")));
        }
        Ok(Config {
            listen,
            data_dir,
            database,
            web_dir,
            log_format,
            secure_cookies: self.secure_cookies.or(file.secure_cookies).unwrap_or(false),
            session_minutes,
            session_key_file,
            secrets_key_file,
            graceful_stop_seconds,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text)
        .map_err(|error| ConfigError::Parse { path: path.to_owned(), message: error.message().to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parapet.toml");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_give_sqlite_in_the_data_directory() {
        let config = ServerArgs::default().resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.database, DatabaseChoice::SqliteIn(PathBuf::from("parapet-data/parapet.db")));
        assert_eq!(config.log_format, LogFormat::Human);
        assert_eq!(config.secrets_key_file, PathBuf::from("parapet-data/secrets.key"));
    }

    #[test]
    fn the_secrets_key_file_comes_from_the_file_or_the_flag_and_differs_from_the_session_key() {
        let (_dir, path) = file("secrets_key_file = \"/etc/parapet/secrets.key\"\n");
        let config = ServerArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap();
        assert_eq!(config.secrets_key_file, PathBuf::from("/etc/parapet/secrets.key"));
        let args = ServerArgs {
            config: Some(path),
            secrets_key_file: Some("/run/s.key".into()),
            session_key_file: Some("/run/s.key".into()),
            ..Default::default()
        };
        let error = args.resolve().unwrap_err().to_string();
        assert!(error.contains("--secrets-key-file") && error.contains("PARAPET_SECRETS_KEY_FILE"), "{error}");
    }

    #[test]
    fn flags_override_the_file() {
        let (_dir, path) = file("listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\n");
        let args = ServerArgs { config: Some(path), listen: Some("127.0.0.1:9100".into()), ..Default::default() };
        let config = args.resolve().unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let (_dir, path) = file("lisen = \"127.0.0.1:9000\"\n");
        let error = ServerArgs { config: Some(path), ..Default::default() }.resolve().unwrap_err().to_string();
        assert!(error.contains("lisen"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key_flag_and_variable() {
        let error =
            ServerArgs { listen: Some("localhost".into()), ..Default::default() }.resolve().unwrap_err().to_string();
        assert!(
            error.contains("`listen`") && error.contains("--listen") && error.contains("PARAPET_LISTEN"),
            "{error}"
        );
        let error =
            ServerArgs { log_format: Some("xml".into()), ..Default::default() }.resolve().unwrap_err().to_string();
        assert!(error.contains("log_format") && error.contains("xml"), "{error}");
        let error = ServerArgs { database_url: Some("mysql://x".into()), ..Default::default() }
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(error.contains("database_url") && error.contains("mysql"), "{error}");
        let (_dir, path) = file("session_minutes = \"ten\"\n");
        let error = ServerArgs { config: Some(path), ..Default::default() }.resolve().unwrap_err().to_string();
        assert!(error.contains("session_minutes") || error.contains("invalid type"), "{error}");
    }
}
