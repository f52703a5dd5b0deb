//! The IPMI driver in Rust: IPMI v2.0 RMCP+ ("lanplus") spoken over UDP by Parapet itself, with
//! Debian's `ipmitool` (`ipmitool.rs`) as the fallback for what this client does not speak.
//!
//! Why our own client: the one crates.io candidate with a usable licence (`ipmi` 0.1, MIT) cannot
//! be told which cipher suite to use (it proposes suite 3 and, when the BMC answers "illegal
//! parameter", silently retries with 2 and then 1, which has no integrity at all), reports every
//! RAKP 2 refusal without its status code (no telling "no such user" from "no free session"), and
//! has no user commands; `rust-ipmi` is GPL-3.0. The wire format lives in `lanplus.rs`
//! without I/O, checked byte for byte against a real ipmitool ↔ ipmi_sim exchange.
//!
//! One BMC call is one session: Open Session and RAKP 1 to 4 with the host's cipher suite (1, 2 or 3:
//! RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128), Set Session Privilege Level ADMINISTRATOR (as the
//! ipmitool driver's `-L ADMINISTRATOR`), the command, and Close Session, sent without waiting when
//! the session is dropped. A password change logs in with the new password before it counts as
//! done, and sets the old one again when that fails. A request with no answer is sent again after
//! 1 s; every call ends within the call timeout ([`OobmError::Timeout`]; twice that for a password
//! change, which takes two sessions, as the app allows it).
//!
//! Errors: a RAKP refusal for the user (unauthorized name, role) or a RAKP code that does not match
//! our password is [`OobmError::Auth`]; a port that refuses datagrams is `Unreachable`; silence is
//! `Timeout`; a completion code is the BMC's answer (`Unsupported` for "invalid command" or "not
//! supported in present state", `Auth` for "insufficient privilege"). What this client cannot do
//! with a BMC (a cipher suite other than 1 to 3, an answer it cannot read) is "not understood":
//! [`IpmiBmc`], the driver `oobm::connect` builds, then does the call again through ipmitool when
//! the program is installed, and logs that it did. A RESET, CYCLE or password change whose answer
//! could not be read is never sent again: the BMC may already have carried it out (a password change
//! then counts only if a login with the new password succeeds).
//!
//! No password reaches a log or an error: messages are built from our own words and numbers only.

mod lanplus;

use super::ipmitool::{self, IpmitoolBmc};
use super::{Bmc, BmcEndpoint, BmcPower, OobmError, OobmSettings, PowerCommand};
use crate::secrets::Secret;
use lanplus::{CipherSuite, IpmiResponse, Protection, SessionKeys, payload};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// How long to wait for an answer before sending a request again (as the ipmitool driver's `-N 1`).
const RETRANSMIT_AFTER: Duration = Duration::from_secs(1);

const NETFN_CHASSIS: u8 = 0x00;
const NETFN_APP: u8 = 0x06;
const GET_CHASSIS_STATUS: u8 = 0x01;
const CHASSIS_CONTROL: u8 = 0x02;
const SET_SESSION_PRIVILEGE: u8 = 0x3b;
const CLOSE_SESSION: u8 = 0x3c;
const GET_USER_ACCESS: u8 = 0x44;
const GET_USER_NAME: u8 = 0x46;
const SET_USER_PASSWORD: u8 = 0x47;
/// Get User Access for the channel the request arrives on.
const THIS_CHANNEL: u8 = 0x0e;

/// Why a native call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    /// The BMC's answer, or its silence: another client would fare no better.
    Final(OobmError),
    /// This client and this BMC did not understand each other (a cipher suite not spoken here, an
    /// answer that cannot be read), and doing the call again with another client is safe. The error
    /// is what to report when there is no other client.
    NotUnderstood(OobmError),
}

impl From<OobmError> for Failure {
    fn from(error: OobmError) -> Self {
        Failure::Final(error)
    }
}

impl Failure {
    fn into_error(self) -> OobmError {
        match self {
            Failure::Final(error) | Failure::NotUnderstood(error) => error,
        }
    }
}

fn not_understood(text: String) -> Failure {
    Failure::NotUnderstood(OobmError::Protocol(text))
}

/// The native client alone, for one BMC. [`IpmiBmc`] adds the ipmitool fallback.
pub struct NativeIpmiBmc {
    endpoint: BmcEndpoint,
    timeout: Duration,
}

impl NativeIpmiBmc {
    /// Every call ends within `timeout`.
    pub fn new(endpoint: BmcEndpoint, timeout: Duration) -> NativeIpmiBmc {
        NativeIpmiBmc { endpoint, timeout }
    }

    async fn bounded<T>(&self, work: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
        tokio::time::timeout(self.timeout, work).await.unwrap_or(Err(Failure::Final(OobmError::Timeout(self.timeout))))
    }

    async fn read_power(&self) -> Result<BmcPower, Failure> {
        self.bounded(async {
            let mut session = Session::open(&self.endpoint).await?;
            let status = session.command_ok(NETFN_CHASSIS, GET_CHASSIS_STATUS, &[], "Get Chassis Status").await?;
            match status.first() {
                Some(current) if current & 0x01 == 0x01 => Ok(BmcPower::On),
                Some(_) => Ok(BmcPower::Off),
                None => Err(not_understood("Get Chassis Status answered without the power state".into())),
            }
        })
        .await
    }

    async fn control(&self, command: PowerCommand) -> Result<(), Failure> {
        let (code, word) = match command {
            PowerCommand::ForceOff => (0x00, "power down"),
            PowerCommand::On => (0x01, "power up"),
            PowerCommand::PowerCycle => (0x02, "power cycle"),
            PowerCommand::ForceRestart => (0x03, "hard reset"),
            PowerCommand::GracefulShutdown => (0x05, "soft shutdown"),
        };
        let repeatable = !matches!(command, PowerCommand::ForceRestart | PowerCommand::PowerCycle);
        self.bounded(async {
            let mut session = Session::open(&self.endpoint).await?;
            let what = format!("Chassis Control ({word})");
            match session.command_ok(NETFN_CHASSIS, CHASSIS_CONTROL, &[code], &what).await {
                Err(Failure::NotUnderstood(error)) if !repeatable => Err(Failure::Final(OobmError::Protocol(format!(
                    "{}; the BMC may have carried it out, so it is not sent again",
                    error_text(&error)
                )))),
                other => other.map(|_| ()),
            }
        })
        .await
    }

    /// Set User Password for the configured user, then prove the BMC took it by logging in with it;
    /// when that fails (some BMCs keep only 16 of the 20 bytes and still answer "success"), the old
    /// password is set again in the first session, which its keys keep open, so neither Parapet nor
    /// the BMC is left with a password that does not work.
    async fn set_password(&self, new_password: &Secret) -> Result<(), Failure> {
        let new = new_password.expose().as_bytes();
        if new.len() > 20 || new.contains(&0) {
            return Err(OobmError::Protocol("an IPMI password is at most 20 bytes, without NUL".into()).into());
        }
        let limit = self.timeout * 2;
        let work = async {
            let mut session = Session::open(&self.endpoint).await?;
            if !session.suite.confidentiality {
                return Err(Failure::Final(OobmError::Unsupported(format!(
                    "changing the password needs an encrypted session (cipher suite 3); suite {} would send it \
                     in the clear",
                    session.suite.id
                ))));
            }
            let user = session.user_id(&self.endpoint.username).await?;
            // An answer we cannot read may follow a change the BMC made: then the login below
            // decides, and ipmitool (which logs in with the old password) is never tried.
            let unread = match session.set_user_password(user, new).await {
                Ok(()) => None,
                Err(Failure::NotUnderstood(error)) => Some(error_text(&error)),
                Err(final_failure) => return Err(final_failure),
            };
            let with_new = BmcEndpoint { password: new_password.clone(), ..self.endpoint.clone() };
            let Err(failure) = Session::open(&with_new).await else {
                return Ok(());
            };
            let why = error_text(&failure.into_error());
            if let Some(unread) = unread {
                return Err(Failure::Final(OobmError::Protocol(format!(
                    "the BMC's answer to Set User Password could not be read ({unread}) and logging in with the new \
                     password failed ({why}): the old password is presumably still in force"
                ))));
            }
            let old = self.endpoint.password.expose().as_bytes();
            Err(Failure::Final(OobmError::Protocol(match session.set_user_password(user, old).await {
                Ok(()) => format!(
                    "the BMC did not take the new password: logging in with it failed ({why}); the old password \
                     was set again"
                ),
                Err(again) => format!(
                    "the BMC did not take the new password: logging in with it failed ({why}), and setting the \
                     old password again failed too ({}); the BMC's password may need a reset by hand",
                    error_text(&again.into_error())
                ),
            })))
        };
        tokio::time::timeout(limit, work).await.unwrap_or(Err(Failure::Final(OobmError::Timeout(limit))))
    }
}

#[async_trait::async_trait]
impl Bmc for NativeIpmiBmc {
    async fn power_state(&self) -> Result<BmcPower, OobmError> {
        self.read_power().await.map_err(Failure::into_error)
    }

    async fn send(&self, command: PowerCommand) -> Result<(), OobmError> {
        self.control(command).await.map_err(Failure::into_error)
    }

    async fn change_password(&self, new_password: &Secret) -> Result<(), OobmError> {
        self.set_password(new_password).await.map_err(Failure::into_error)
    }
}

/// The `ipmitool` driver as configured: the native client first, then Debian's `ipmitool` for a
/// call the native client did not understand, when that program is installed.
pub struct IpmiBmc {
    native: NativeIpmiBmc,
    ipmitool: IpmitoolBmc,
    program: PathBuf,
}

impl IpmiBmc {
    pub fn new(endpoint: BmcEndpoint, settings: &OobmSettings) -> IpmiBmc {
        IpmiBmc {
            native: NativeIpmiBmc::new(endpoint.clone(), settings.call_timeout),
            ipmitool: IpmitoolBmc::new(endpoint, settings.ipmitool_program.clone()),
            program: settings.ipmitool_program.clone(),
        }
    }

    async fn or_ipmitool<T, F: Future<Output = Result<T, OobmError>>>(
        &self,
        action: &str,
        native: Result<T, Failure>,
        fallback: impl FnOnce() -> F,
    ) -> Result<T, OobmError> {
        match native {
            Ok(value) => Ok(value),
            Err(Failure::Final(error)) => Err(error),
            Err(Failure::NotUnderstood(error)) if !program_exists(&self.program) => {
                let also = format!(
                    "; no fallback: {} (Debian package {}) is not installed",
                    self.program.display(),
                    ipmitool::PACKAGE
                );
                Err(match error {
                    OobmError::Unsupported(text) => OobmError::Unsupported(text + &also),
                    OobmError::Protocol(text) => OobmError::Protocol(text + &also),
                    other => other,
                })
            }
            Err(Failure::NotUnderstood(error)) => {
                let endpoint = &self.native.endpoint;
                tracing::warn!(
                    bmc = %format!("{}:{}", endpoint.address, endpoint.port),
                    cipher_suite = endpoint.ipmi_cipher_suite,
                    action,
                    reason = %error,
                    "the native IPMI client could not do this; falling back to ipmitool"
                );
                fallback().await
            }
        }
    }
}

#[async_trait::async_trait]
impl Bmc for IpmiBmc {
    async fn power_state(&self) -> Result<BmcPower, OobmError> {
        let native = self.native.read_power().await;
        self.or_ipmitool("STATUS", native, || self.ipmitool.power_state()).await
    }

    async fn send(&self, command: PowerCommand) -> Result<(), OobmError> {
        let native = self.native.control(command).await;
        self.or_ipmitool(&format!("{command:?}"), native, || self.ipmitool.send(command)).await
    }

    async fn change_password(&self, new_password: &Secret) -> Result<(), OobmError> {
        let native = self.native.set_password(new_password).await;
        self.or_ipmitool("password change", native, || self.ipmitool.change_password(new_password)).await
    }
}

/// Whether `program` can be run: a path as given, a bare name on `PATH`.
fn program_exists(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |path: &Path| {
        std::fs::metadata(path).map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    if program.components().count() > 1 {
        return runnable(program);
    }
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| runnable(&dir.join(program))))
}

/// One RMCP+ session with a BMC, closed when dropped.
struct Session {
    socket: UdpSocket,
    suite: CipherSuite,
    keys: SessionKeys,
    console_session_id: u32,
    bmc_session_id: u32,
    /// Session sequence number of the next packet (0 is for packets outside a session).
    sequence: u32,
    /// IPMI request sequence number (6 bits) of the next request.
    rq_seq: u8,
}

impl Session {
    /// Open Session and RAKP 1 to 4, then ask for ADMINISTRATOR privilege.
    async fn open(endpoint: &BmcEndpoint) -> Result<Session, Failure> {
        let suite = match (endpoint.ipmi_cipher_suite, CipherSuite::from_id(endpoint.ipmi_cipher_suite)) {
            (0, _) => {
                return Err(
                    OobmError::Unsupported("cipher suite 0 has no authentication and is never used".into()).into()
                );
            }
            (_, Some(suite)) => suite,
            (id, None) => {
                return Err(Failure::NotUnderstood(OobmError::Unsupported(format!(
                    "cipher suite {id} is not spoken by the native IPMI client (it speaks 1, 2 and 3)"
                ))));
            }
        };
        let username = endpoint.username.as_bytes();
        let password = Zeroizing::new(endpoint.password.expose().as_bytes().to_vec());
        if username.len() > 16 {
            return Err(OobmError::Protocol("an IPMI user name is at most 16 bytes".into()).into());
        }
        if password.len() > 20 {
            return Err(OobmError::Protocol("an IPMI password is at most 20 bytes".into()).into());
        }
        let socket = connect(endpoint).await?;

        let console_session_id = rand::random::<u32>().max(1);
        let tag = rand::random::<u8>();
        let open = lanplus::encode_packet(
            payload::OPEN_SESSION_REQUEST,
            0,
            0,
            &lanplus::open_session_request(tag, console_session_id, suite),
            None,
            [0; 16],
        );
        let opened = exchange(&socket, &open, |bytes| {
            let Some(packet) = outside_session(bytes, payload::OPEN_SESSION_RESPONSE, "Open Session")? else {
                return Ok(None);
            };
            let answer = lanplus::parse_open_session_response(&packet.payload)
                .map_err(|error| not_understood(format!("unreadable answer to Open Session: {error}")))?;
            Ok((answer.tag == tag && answer.console_session_id == console_session_id).then_some(answer))
        })
        .await?;
        if opened.status != 0 {
            return Err(rmcp_status("Open Session", opened.status, suite.id));
        }
        let bmc_session_id = opened.bmc_session_id;
        if opened.algorithms != suite.algorithms() {
            return Err(not_understood(format!(
                "the BMC chose algorithms {:?} when offered those of cipher suite {}",
                opened.algorithms, suite.id
            )));
        }

        let role = lanplus::PRIVILEGE_ADMINISTRATOR | lanplus::NAME_ONLY_LOOKUP;
        let console_random = rand::random::<[u8; 16]>();
        let tag = rand::random::<u8>();
        let first = lanplus::encode_packet(
            payload::RAKP_1,
            0,
            0,
            &lanplus::rakp1(tag, bmc_session_id, &console_random, role, username),
            None,
            [0; 16],
        );
        let second = exchange(&socket, &first, |bytes| {
            let Some(packet) = outside_session(bytes, payload::RAKP_2, "RAKP 1")? else {
                return Ok(None);
            };
            let answer = lanplus::parse_rakp2(&packet.payload)
                .map_err(|error| not_understood(format!("unreadable RAKP 2: {error}")))?;
            Ok((answer.tag == tag && answer.console_session_id == console_session_id).then_some(answer))
        })
        .await?;
        if second.status != 0 {
            return Err(rmcp_status("RAKP 2", second.status, suite.id));
        }
        let rakp = lanplus::RakpExchange {
            password: &password,
            username,
            role,
            console_session_id,
            bmc_session_id,
            console_random,
            bmc_random: second.bmc_random,
            bmc_guid: second.bmc_guid,
        };
        if !rakp.rakp2_matches(&second.auth_code) {
            return Err(OobmError::Auth(
                "the BMC's RAKP 2 code does not match the configured password (wrong password)".into(),
            )
            .into());
        }

        let tag = rand::random::<u8>();
        let third = lanplus::encode_packet(
            payload::RAKP_3,
            0,
            0,
            &lanplus::rakp3(tag, bmc_session_id, &rakp.rakp3_code()),
            None,
            [0; 16],
        );
        let fourth = exchange(&socket, &third, |bytes| {
            let Some(packet) = outside_session(bytes, payload::RAKP_4, "RAKP 3")? else {
                return Ok(None);
            };
            let answer = lanplus::parse_rakp4(&packet.payload)
                .map_err(|error| not_understood(format!("unreadable RAKP 4: {error}")))?;
            Ok((answer.tag == tag && answer.console_session_id == console_session_id).then_some(answer))
        })
        .await?;
        if fourth.status != 0 {
            return Err(rmcp_status("RAKP 4", fourth.status, suite.id));
        }
        let sik = rakp.session_integrity_key();
        if !rakp.rakp4_matches(&sik, &fourth.integrity_check) {
            return Err(OobmError::Auth(
                "the BMC's RAKP 4 check value does not verify (a BMC key K_G may be set, which is not supported)"
                    .into(),
            )
            .into());
        }
        let mut session = Session {
            socket,
            suite,
            keys: SessionKeys::derive(&sik),
            console_session_id,
            bmc_session_id,
            sequence: 1,
            rq_seq: 1,
        };
        // As ipmitool does; a BMC that keeps a lower level for this user refuses what needs more
        // with "insufficient privilege", classified where it happens.
        let privilege = session
            .command(
                NETFN_APP,
                SET_SESSION_PRIVILEGE,
                &[lanplus::PRIVILEGE_ADMINISTRATOR],
                "Set Session Privilege Level",
            )
            .await?;
        if privilege.completion_code != 0 {
            tracing::debug!(
                completion_code = privilege.completion_code,
                "the BMC kept a lower session privilege than ADMINISTRATOR"
            );
        }
        Ok(session)
    }

    /// Send one IPMI request in the session and read its answer (any completion code).
    async fn command(&mut self, netfn: u8, command: u8, data: &[u8], what: &str) -> Result<IpmiResponse, Failure> {
        let rq_seq = self.rq_seq;
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let packet = self.packet(&lanplus::ipmi_request(netfn, command, rq_seq, data));
        let protection = Protection { suite: self.suite, keys: &self.keys };
        let console_session_id = self.console_session_id;
        exchange(&self.socket, &packet, |bytes| {
            let (kind, session_id) = lanplus::peek(bytes)
                .map_err(|error| not_understood(format!("unreadable answer to {what}: {error}")))?;
            if kind != payload::IPMI || session_id != console_session_id {
                return Ok(None);
            }
            let packet = lanplus::decode_packet(bytes, Some(&protection))
                .map_err(|error| not_understood(format!("unreadable answer to {what}: {error}")))?;
            let answer = lanplus::parse_ipmi_response(&packet.payload)
                .map_err(|error| not_understood(format!("unreadable answer to {what}: {error}")))?;
            Ok((answer.rq_seq == rq_seq && answer.command == command && answer.netfn == netfn | 1).then_some(answer))
        })
        .await
    }

    /// [`Self::command`] that must complete normally; its data.
    async fn command_ok(&mut self, netfn: u8, command: u8, data: &[u8], what: &str) -> Result<Vec<u8>, Failure> {
        let answer = self.command(netfn, command, data, what).await?;
        match answer.completion_code {
            0 => Ok(answer.data),
            code => Err(completion_error(what, code).into()),
        }
    }

    /// The id of the user named `username` (Get User Name over the channel's user ids, as
    /// `ipmitool user list` does).
    async fn user_id(&mut self, username: &str) -> Result<u8, Failure> {
        let access = self.command(NETFN_APP, GET_USER_ACCESS, &[THIS_CHANNEL, 0x01], "Get User Access").await?;
        let most = match (access.completion_code, access.data.first()) {
            (0, Some(count)) if count & 0x3f > 0 => count & 0x3f,
            _ => 16,
        };
        for id in 1..=most {
            let answer = self.command(NETFN_APP, GET_USER_NAME, &[id], "Get User Name").await?;
            if answer.completion_code != 0 {
                // Some BMCs refuse to name user 1 (the anonymous user) or unused ids.
                continue;
            }
            let name = answer.data.split(|byte| *byte == 0).next().unwrap_or_default();
            if !username.is_empty() && name == username.as_bytes() {
                return Ok(id);
            }
        }
        Err(OobmError::Protocol(format!("the BMC has no user named {username:?} on this channel")).into())
    }

    /// Set User Password (20-byte form) for user `id`.
    async fn set_user_password(&mut self, id: u8, password: &[u8]) -> Result<(), Failure> {
        // User id with bit 7: the 20-byte (IPMI v2.0) password form; operation 2: set password.
        let mut request = Zeroizing::new(vec![id | 0x80, 0x02]);
        request.extend_from_slice(password);
        request.resize(22, 0);
        let answer = self.command(NETFN_APP, SET_USER_PASSWORD, &request, "Set User Password").await?;
        match answer.completion_code {
            0x00 => Ok(()),
            0x80 | 0x81 => Err(Failure::Final(OobmError::Protocol(format!(
                "the BMC refused the password: Set User Password completion code {:#04x} ({})",
                answer.completion_code,
                if answer.completion_code == 0x80 { "password test failed" } else { "wrong password size" }
            )))),
            code => Err(Failure::Final(match completion_error("Set User Password", code) {
                OobmError::Protocol(text) => OobmError::Protocol(format!("the BMC refused the password: {text}")),
                other => other,
            })),
        }
    }

    /// A session packet around an IPMI message, with the next sequence number and a fresh IV.
    fn packet(&mut self, message: &[u8]) -> Vec<u8> {
        let sequence = self.sequence;
        self.sequence = self.sequence.wrapping_add(1).max(1);
        let protection = Protection { suite: self.suite, keys: &self.keys };
        lanplus::encode_packet(payload::IPMI, self.bmc_session_id, sequence, message, Some(&protection), rand::random())
    }
}

impl Drop for Session {
    /// Close Session, sent once without waiting for the answer: a call must not wait on it, and a
    /// BMC that misses it ends the session at its own idle timeout.
    fn drop(&mut self) {
        let rq_seq = self.rq_seq;
        let message = lanplus::ipmi_request(NETFN_APP, CLOSE_SESSION, rq_seq, &self.bmc_session_id.to_le_bytes());
        let packet = self.packet(&message);
        let _ = self.socket.try_send(&packet);
    }
}

/// A UDP socket connected to the BMC (so only its datagrams are read, and a closed port is told).
async fn connect(endpoint: &BmcEndpoint) -> Result<UdpSocket, Failure> {
    let address = endpoint.address.trim_start_matches('[').trim_end_matches(']');
    let target: SocketAddr = tokio::net::lookup_host((address, endpoint.port))
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| OobmError::Unreachable(format!("cannot resolve the BMC address {address:?}")))?;
    let local = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(local).await.map_err(io_failure)?;
    socket.connect(target).await.map_err(io_failure)?;
    Ok(socket)
}

/// Send `packet` until `read` accepts an answer (`Some`), sending it again after
/// [`RETRANSMIT_AFTER`] of silence. Datagrams `read` passes over (`None`) are ignored; the caller's
/// timeout ends the wait.
async fn exchange<T>(
    socket: &UdpSocket,
    packet: &[u8],
    mut read: impl FnMut(&[u8]) -> Result<Option<T>, Failure>,
) -> Result<T, Failure> {
    let mut buffer = vec![0u8; 2048];
    loop {
        socket.send(packet).await.map_err(io_failure)?;
        let resend_at = Instant::now() + RETRANSMIT_AFTER;
        loop {
            match tokio::time::timeout_at(resend_at, socket.recv(&mut buffer)).await {
                Err(_) => break,
                Ok(Err(error)) => return Err(io_failure(error)),
                Ok(Ok(length)) => {
                    if let Some(answer) = read(&buffer[..length])? {
                        return Ok(answer);
                    }
                }
            }
        }
    }
}

/// A session-setup answer of `kind`, or `None` for a datagram of another kind.
fn outside_session(bytes: &[u8], kind: u8, what: &str) -> Result<Option<lanplus::Packet>, Failure> {
    let (found, _) =
        lanplus::peek(bytes).map_err(|error| not_understood(format!("unreadable answer to {what}: {error}")))?;
    if found != kind {
        return Ok(None);
    }
    lanplus::decode_packet(bytes, None)
        .map(Some)
        .map_err(|error| not_understood(format!("unreadable answer to {what}: {error}")))
}

fn io_failure(error: std::io::Error) -> Failure {
    Failure::Final(OobmError::Unreachable(match error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "nothing answers IPMI at that address and port (port unreachable)".into()
        }
        _ => format!("network error: {error}"),
    }))
}

/// An RMCP+ status code (IPMI 2.0 table 13-15) in an Open Session Response or RAKP message.
fn rmcp_status(stage: &str, status: u8, suite: u8) -> Failure {
    let text = |what: &str| format!("{stage}: {what} (RMCP+ status {status:#04x})");
    match status {
        0x0d => OobmError::Auth(text("unauthorized name: the BMC has no such user")).into(),
        0x0f => OobmError::Auth(text("invalid integrity check value: wrong password")).into(),
        0x09 | 0x0a => OobmError::Auth(text("the user may not have the requested role")).into(),
        0x0c => OobmError::Auth(text("invalid user name length")).into(),
        0x0e => OobmError::Auth(text("unauthorized GUID")).into(),
        0x04..=0x07 | 0x10 | 0x11 => {
            OobmError::Unsupported(text(&format!("the BMC refuses the algorithms of cipher suite {suite}"))).into()
        }
        0x01 | 0x0b => OobmError::Protocol(text("the BMC has no free session")).into(),
        _ => not_understood(text("the BMC did not accept our request")),
    }
}

/// A completion code other than 0, as an error.
fn completion_error(what: &str, code: u8) -> OobmError {
    let meaning = match code {
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "invalid command for this LUN",
        0xc3 => "timeout while processing",
        0xc7 => "request data length invalid",
        0xc9 => "parameter out of range",
        0xcc => "invalid data field",
        0xce => "cannot answer",
        0xd4 => "insufficient privilege",
        0xd5 => "not supported in present state",
        0xd6 => "sub-function disabled",
        0xff => "unspecified error",
        _ => "see the IPMI specification",
    };
    let text = format!("{what} failed: completion code {code:#04x} ({meaning})");
    match code {
        0xd4 => OobmError::Auth(format!("the BMC user lacks the privilege for this: {text}")),
        0xc1 | 0xc2 | 0xd5 | 0xd6 => OobmError::Unsupported(text),
        _ => OobmError::Protocol(text),
    }
}

/// An error's own words, without the "kind" prefix its Display adds.
fn error_text(error: &OobmError) -> String {
    match error {
        OobmError::Unreachable(text)
        | OobmError::Auth(text)
        | OobmError::Unsupported(text)
        | OobmError::Protocol(text) => text.clone(),
        OobmError::Timeout(_) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmcp_statuses_tell_credentials_from_the_rest() {
        let kind = |status| match rmcp_status("RAKP 2", status, 3) {
            Failure::Final(error) => (true, error.kind()),
            Failure::NotUnderstood(error) => (false, error.kind()),
        };
        use api::v1::OobmErrorKind::*;
        assert_eq!(kind(0x0d), (true, Auth), "unauthorized name");
        assert_eq!(kind(0x0f), (true, Auth), "invalid integrity check value");
        assert_eq!(kind(0x0a), (true, Auth), "unauthorized role");
        assert_eq!(kind(0x11), (true, Unsupported), "no cipher suite match");
        assert_eq!(kind(0x01), (true, Protocol), "no free session: another client fares no better");
        assert_eq!(kind(0x12), (false, Protocol), "illegal parameter: maybe our mistake, another client may do");
    }

    #[test]
    fn completion_codes_are_classified() {
        use api::v1::OobmErrorKind::*;
        assert_eq!(completion_error("Chassis Control", 0xd4).kind(), Auth);
        assert_eq!(completion_error("Chassis Control", 0xd5).kind(), Unsupported);
        assert_eq!(completion_error("Chassis Control", 0xc1).kind(), Unsupported);
        assert_eq!(completion_error("Chassis Control", 0xcc).kind(), Protocol);
        assert!(completion_error("Chassis Control", 0xd5).to_string().contains("not supported in present state"));
    }

    fn endpoint(suite: u8) -> BmcEndpoint {
        BmcEndpoint {
            driver: api::v1::OobmDriver::Ipmitool,
            address: "127.0.0.1".into(),
            port: 9,
            username: "admin".into(),
            password: Secret::new("do-not-show"),
            ipmi_cipher_suite: suite,
            redfish_https: false,
            redfish_accept_self_signed: false,
            redfish_auth: api::v1::RedfishAuth::Basic,
            redfish_system_id: None,
        }
    }

    #[tokio::test]
    async fn suites_other_than_1_to_3_are_left_to_ipmitool_and_0_to_nobody() {
        let seventeen = Session::open(&endpoint(17)).await.err().unwrap();
        assert!(matches!(&seventeen, Failure::NotUnderstood(OobmError::Unsupported(text)) if text.contains("17")));
        let zero = Session::open(&endpoint(0)).await.err().unwrap();
        assert!(matches!(zero, Failure::Final(OobmError::Unsupported(_))), "{zero:?}");
    }

    #[tokio::test]
    async fn garbage_answers_are_not_understood_during_session_setup() {
        // A "BMC" that answers every datagram with something that is not RMCP+.
        let bmc = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = bmc.local_addr().unwrap().port();
        let garbage = tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            while let Ok((_, from)) = bmc.recv_from(&mut buffer).await {
                let _ = bmc.send_to(b"not IPMI", from).await;
            }
        });
        let native = NativeIpmiBmc::new(BmcEndpoint { port, ..endpoint(3) }, Duration::from_secs(2));
        // Nothing reached the chassis yet, so even a RESET may be tried again by another client.
        let reset = native.control(PowerCommand::ForceRestart).await;
        assert!(
            matches!(&reset, Err(Failure::NotUnderstood(OobmError::Protocol(text))) if text.contains("Open Session"))
        );
        assert!(matches!(native.read_power().await, Err(Failure::NotUnderstood(OobmError::Protocol(_)))));
        garbage.abort();
    }

    #[test]
    fn a_program_is_found_on_the_path_or_where_it_is_given() {
        assert!(program_exists(Path::new("sh")));
        assert!(program_exists(Path::new("/bin/sh")));
        assert!(!program_exists(Path::new("/nonexistent/ipmitool")));
        assert!(!program_exists(Path::new("no-such-program-parapet")));
    }
}
