//! IPMI v2.0 RMCP+ ("lanplus") on the wire, without any I/O: the packets of session setup (Open
//! Session, RAKP 1 to 4), the RAKP-HMAC-SHA1 key exchange (codes, SIK, K1, K2), session packets with
//! HMAC-SHA1-96 integrity and AES-CBC-128 confidentiality, and the IPMI LAN message inside them.
//! Kept apart from the sockets so every byte can be checked against a real exchange in unit tests.
//!
//! Only what cipher suites 1, 2 and 3 need is here (RAKP-HMAC-SHA1; HMAC-SHA1-96 or none; AES-CBC-128
//! or none): suite 3 is every BMC's mandatory one and our default. Other suites are left to ipmitool
//! (see `ipmi_native.rs`).

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, Mac};
use zeroize::Zeroize;

type HmacSha1 = Hmac<sha1::Sha1>;

/// RMCP header of every IPMI-over-LAN datagram: version 6, reserved, no RMCP ACK, class IPMI.
pub const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
/// Session header "authentication type" that says RMCP+ (IPMI v2.0) format.
const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
/// Payload-type bits: the payload is encrypted / the packet carries an AuthCode.
const ENCRYPTED: u8 = 0x80;
const AUTHENTICATED: u8 = 0x40;
/// "Next header" byte after the integrity pad.
const NEXT_HEADER: u8 = 0x07;
/// HMAC-SHA1-96: the AuthCode and the RAKP 4 check value are the first 12 bytes of the HMAC.
const SHA1_96: usize = 12;

/// RMCP+ payload types.
pub mod payload {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP_1: u8 = 0x12;
    pub const RAKP_2: u8 = 0x13;
    pub const RAKP_3: u8 = 0x14;
    pub const RAKP_4: u8 = 0x15;
}

/// Privilege levels (roles).
pub const PRIVILEGE_ADMINISTRATOR: u8 = 0x04;
/// RAKP 1 role bit: look the user up by name only (not by name and privilege), as ipmitool does, so a
/// user whose limit is below the requested role still gets a session at its own limit.
pub const NAME_ONLY_LOOKUP: u8 = 0x10;

/// Requester and responder addresses of a LAN message: remote console software 0x81, the BMC 0x20.
const CONSOLE_ADDRESS: u8 = 0x81;
const BMC_ADDRESS: u8 = 0x20;

/// A wire answer we cannot read. Nothing in it comes from a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(text: impl Into<String>) -> Malformed {
    Malformed(text.into())
}

/// The cipher suites spoken here: all authenticate with RAKP-HMAC-SHA1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherSuite {
    pub id: u8,
    /// HMAC-SHA1-96 on every session packet.
    pub integrity: bool,
    /// AES-CBC-128 on every session payload.
    pub confidentiality: bool,
}

impl CipherSuite {
    /// Suite `id` when it is one of 1, 2 and 3; `None` for the others (0 has no authentication at all).
    pub fn from_id(id: u8) -> Option<CipherSuite> {
        match id {
            1 => Some(CipherSuite { id, integrity: false, confidentiality: false }),
            2 => Some(CipherSuite { id, integrity: true, confidentiality: false }),
            3 => Some(CipherSuite { id, integrity: true, confidentiality: true }),
            _ => None,
        }
    }

    /// Algorithm numbers (authentication, integrity, confidentiality) as Open Session proposes them.
    pub fn algorithms(self) -> (u8, u8, u8) {
        (0x01, u8::from(self.integrity), u8::from(self.confidentiality))
    }
}

/// Open Session Request (IPMI 2.0 table 13-9). Requested maximum privilege 0 lets the BMC pick the
/// highest level that fits; RAKP 1 asks for the role.
pub fn open_session_request(tag: u8, console_session_id: u32, suite: CipherSuite) -> Vec<u8> {
    let (auth, integrity, confidentiality) = suite.algorithms();
    let mut out = vec![tag, 0x00, 0x00, 0x00];
    out.extend_from_slice(&console_session_id.to_le_bytes());
    for (kind, algorithm) in [(0x00, auth), (0x01, integrity), (0x02, confidentiality)] {
        out.extend_from_slice(&[kind, 0x00, 0x00, 0x08, algorithm, 0x00, 0x00, 0x00]);
    }
    out
}

/// Open Session Response (table 13-10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    pub algorithms: (u8, u8, u8),
}

pub fn parse_open_session_response(payload: &[u8]) -> Result<OpenSessionResponse, Malformed> {
    if payload.len() < 8 {
        return Err(malformed(format!("Open Session Response of {} bytes", payload.len())));
    }
    let status = payload[1];
    let console_session_id = le32(&payload[4..8]);
    if status != 0 {
        // An error answer may stop after the console's session id.
        return Ok(OpenSessionResponse {
            tag: payload[0],
            status,
            console_session_id,
            bmc_session_id: 0,
            algorithms: (0, 0, 0),
        });
    }
    if payload.len() < 36 {
        return Err(malformed(format!("Open Session Response of {} bytes", payload.len())));
    }
    Ok(OpenSessionResponse {
        tag: payload[0],
        status,
        console_session_id,
        bmc_session_id: le32(&payload[8..12]),
        algorithms: (payload[16] & 0x3f, payload[24] & 0x3f, payload[32] & 0x3f),
    })
}

/// RAKP Message 1 (table 13-11).
pub fn rakp1(tag: u8, bmc_session_id: u32, console_random: &[u8; 16], role: u8, username: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, 0x00, 0x00, 0x00];
    out.extend_from_slice(&bmc_session_id.to_le_bytes());
    out.extend_from_slice(console_random);
    out.extend_from_slice(&[role, 0x00, 0x00, username.len() as u8]);
    out.extend_from_slice(username);
    out
}

/// RAKP Message 2 (table 13-12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    pub auth_code: Vec<u8>,
}

pub fn parse_rakp2(payload: &[u8]) -> Result<Rakp2, Malformed> {
    if payload.len() < 8 {
        return Err(malformed(format!("RAKP 2 of {} bytes", payload.len())));
    }
    let (tag, status, console_session_id) = (payload[0], payload[1], le32(&payload[4..8]));
    if status != 0 {
        return Ok(Rakp2 {
            tag,
            status,
            console_session_id,
            bmc_random: [0; 16],
            bmc_guid: [0; 16],
            auth_code: Vec::new(),
        });
    }
    if payload.len() < 40 {
        return Err(malformed(format!("RAKP 2 of {} bytes", payload.len())));
    }
    Ok(Rakp2 {
        tag,
        status,
        console_session_id,
        bmc_random: payload[8..24].try_into().expect("16 bytes"),
        bmc_guid: payload[24..40].try_into().expect("16 bytes"),
        auth_code: payload[40..].to_vec(),
    })
}

/// RAKP Message 3 (table 13-13), status 0.
pub fn rakp3(tag: u8, bmc_session_id: u32, auth_code: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, 0x00, 0x00, 0x00];
    out.extend_from_slice(&bmc_session_id.to_le_bytes());
    out.extend_from_slice(auth_code);
    out
}

/// RAKP Message 4 (table 13-14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rakp4 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub integrity_check: Vec<u8>,
}

pub fn parse_rakp4(payload: &[u8]) -> Result<Rakp4, Malformed> {
    if payload.len() < 8 {
        return Err(malformed(format!("RAKP 4 of {} bytes", payload.len())));
    }
    Ok(Rakp4 {
        tag: payload[0],
        status: payload[1],
        console_session_id: le32(&payload[4..8]),
        integrity_check: payload[8..].to_vec(),
    })
}

/// What RAKP-HMAC-SHA1 computes its codes from (IPMI 2.0 section 13.31). The user's key K[UID] is
/// the password (HMAC pads short keys with zeros, as the 20-byte password field is padded); no
/// BMC key (K_G) is configured, so K_G is K[UID].
pub struct RakpExchange<'a> {
    pub password: &'a [u8],
    pub username: &'a [u8],
    /// RoleM as sent in RAKP 1 (privilege and lookup bit).
    pub role: u8,
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    pub console_random: [u8; 16],
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
}

impl RakpExchange<'_> {
    fn name_part(&self) -> [u8; 2] {
        [self.role, self.username.len() as u8]
    }

    /// Whether RAKP 2's code proves the BMC knows our password:
    /// HMAC_K[UID](SIDm | SIDc | Rm | Rc | GUIDc | RoleM | ULengthM | UNameM).
    pub fn rakp2_matches(&self, auth_code: &[u8]) -> bool {
        hmac_verify(
            self.password,
            &[
                &self.console_session_id.to_le_bytes(),
                &self.bmc_session_id.to_le_bytes(),
                &self.console_random,
                &self.bmc_random,
                &self.bmc_guid,
                &self.name_part(),
                self.username,
            ],
            auth_code,
        )
    }

    /// RAKP 3's code, which proves we know it: HMAC_K[UID](Rc | SIDm | RoleM | ULengthM | UNameM).
    pub fn rakp3_code(&self) -> [u8; 20] {
        hmac_sha1(
            self.password,
            &[&self.bmc_random, &self.console_session_id.to_le_bytes(), &self.name_part(), self.username],
        )
    }

    /// The Session Integrity Key: HMAC_KG(Rm | Rc | RoleM | ULengthM | UNameM).
    pub fn session_integrity_key(&self) -> Sik {
        Sik(hmac_sha1(self.password, &[&self.console_random, &self.bmc_random, &self.name_part(), self.username]))
    }

    /// Whether RAKP 4's value proves the BMC derived the same SIK: HMAC_SIK(Rm | SIDc | GUIDc), 96 bits.
    pub fn rakp4_matches(&self, sik: &Sik, integrity_check: &[u8]) -> bool {
        integrity_check.len() == SHA1_96
            && hmac_verify(
                &sik.0,
                &[&self.console_random, &self.bmc_session_id.to_le_bytes(), &self.bmc_guid],
                integrity_check,
            )
    }
}

/// The Session Integrity Key of one session; wiped when dropped.
pub struct Sik([u8; 20]);

impl Drop for Sik {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The keys a session's packets are protected with: K1 for the AuthCode, the first 16 bytes of K2
/// for AES. Wiped when dropped.
pub struct SessionKeys {
    k1: [u8; 20],
    aes: [u8; 16],
}

impl SessionKeys {
    /// K1 = HMAC_SIK(20 × 0x01), K2 = HMAC_SIK(20 × 0x02) (section 13.32).
    pub fn derive(sik: &Sik) -> SessionKeys {
        let k1 = hmac_sha1(&sik.0, &[&[0x01; 20]]);
        let mut k2 = hmac_sha1(&sik.0, &[&[0x02; 20]]);
        let aes = k2[..16].try_into().expect("16 bytes");
        k2.zeroize();
        SessionKeys { k1, aes }
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.aes.zeroize();
    }
}

/// How a session's packets are protected: the negotiated suite and its keys.
pub struct Protection<'a> {
    pub suite: CipherSuite,
    pub keys: &'a SessionKeys,
}

/// One RMCP+ datagram (section 13.6). Before a session exists `protection` is `None` (session id and
/// sequence 0); after, the payload is encrypted with `iv` when the suite says so and the packet gets
/// an AuthCode when it says so.
pub fn encode_packet(
    payload_type: u8,
    session_id: u32,
    sequence: u32,
    payload: &[u8],
    protection: Option<&Protection<'_>>,
    iv: [u8; 16],
) -> Vec<u8> {
    let mut kind = payload_type;
    let mut body = payload.to_vec();
    if let Some(protection) = protection.filter(|protection| protection.suite.confidentiality) {
        kind |= ENCRYPTED;
        body = encrypt(&protection.keys.aes, iv, payload);
    }
    let integrity = protection.filter(|protection| protection.suite.integrity);
    if integrity.is_some() {
        kind |= AUTHENTICATED;
    }
    let mut out = RMCP_HEADER.to_vec();
    out.extend_from_slice(&[AUTH_TYPE_RMCP_PLUS, kind]);
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    if let Some(protection) = integrity {
        // Pad with 0xFF so the AuthCode covers a whole number of 4-byte words (from the auth type
        // through the next-header byte).
        let covered = out.len() - RMCP_HEADER.len() + 2;
        let pad = (4 - covered % 4) % 4;
        out.extend(std::iter::repeat_n(0xff, pad));
        out.extend_from_slice(&[pad as u8, NEXT_HEADER]);
        let code = hmac_sha1(&protection.keys.k1, &[&out[RMCP_HEADER.len()..]]);
        out.extend_from_slice(&code[..SHA1_96]);
    }
    out
}

/// A received RMCP+ datagram, its AuthCode checked and its payload decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Without the encrypted / authenticated bits.
    pub payload_type: u8,
    pub session_id: u32,
    pub sequence: u32,
    pub payload: Vec<u8>,
}

/// The payload type (without the protection bits) and session id of a datagram: whether an answer
/// belongs to the exchange under way is decided on these before anything is checked or decrypted.
pub fn peek(bytes: &[u8]) -> Result<(u8, u32), Malformed> {
    if bytes.len() < 16 || bytes[..4] != RMCP_HEADER || bytes[4] != AUTH_TYPE_RMCP_PLUS {
        return Err(malformed(format!("an answer that is not RMCP+ ({} bytes)", bytes.len())));
    }
    Ok((bytes[5] & 0x3f, le32(&bytes[6..10])))
}

/// Read a datagram. With `protection`, the packet must carry a valid AuthCode and an encrypted
/// payload when the suite says so: an unprotected answer inside a protected session is refused.
pub fn decode_packet(bytes: &[u8], protection: Option<&Protection<'_>>) -> Result<Packet, Malformed> {
    if bytes.len() < 16 || bytes[..4] != RMCP_HEADER {
        return Err(malformed(format!("not an RMCP+ packet ({} bytes)", bytes.len())));
    }
    if bytes[4] != AUTH_TYPE_RMCP_PLUS {
        return Err(malformed(format!("session format {:#04x}, not RMCP+", bytes[4])));
    }
    let kind = bytes[5];
    let length = usize::from(u16::from_le_bytes([bytes[14], bytes[15]]));
    let end = 16 + length;
    if bytes.len() < end {
        return Err(malformed(format!("payload of {length} bytes in a packet of {}", bytes.len())));
    }
    let integrity = protection.filter(|protection| protection.suite.integrity);
    let confidentiality = protection.filter(|protection| protection.suite.confidentiality);
    if let Some(protection) = integrity {
        if kind & AUTHENTICATED == 0 {
            return Err(malformed("an answer without AuthCode inside an authenticated session"));
        }
        let trailer = &bytes[end..];
        if trailer.len() < 2 + SHA1_96 {
            return Err(malformed("an AuthCode trailer that is too short"));
        }
        let code_at = bytes.len() - SHA1_96;
        let pad = usize::from(bytes[code_at - 2]);
        if bytes[code_at - 1] != NEXT_HEADER || end + pad + 2 != code_at {
            return Err(malformed("an integrity trailer that does not add up"));
        }
        if !hmac_verify(&protection.keys.k1, &[&bytes[4..code_at]], &bytes[code_at..]) {
            return Err(malformed("an answer whose AuthCode does not verify"));
        }
    }
    let body = &bytes[16..end];
    let payload = match confidentiality {
        Some(protection) => {
            if kind & ENCRYPTED == 0 {
                return Err(malformed("an unencrypted answer inside an encrypted session"));
            }
            decrypt(&protection.keys.aes, body)?
        }
        None if kind & ENCRYPTED != 0 => return Err(malformed("an encrypted answer we hold no key for")),
        None => body.to_vec(),
    };
    Ok(Packet { payload_type: kind & 0x3f, session_id: le32(&bytes[6..10]), sequence: le32(&bytes[10..14]), payload })
}

/// AES-CBC-128 with IPMI's confidentiality trailer (pad bytes 1, 2, 3, … then the pad length),
/// prefixed by the IV (section 13.29).
fn encrypt(key: &[u8; 16], iv: [u8; 16], data: &[u8]) -> Vec<u8> {
    let pad = (16 - (data.len() + 1) % 16) % 16;
    let mut block = data.to_vec();
    block.extend((1..=pad).map(|byte| byte as u8));
    block.push(pad as u8);
    let length = block.len();
    cbc::Encryptor::<aes::Aes128>::new(key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut block, length)
        .expect("whole blocks");
    let mut out = iv.to_vec();
    out.extend_from_slice(&block);
    out
}

fn decrypt(key: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, Malformed> {
    if body.len() < 32 || !body.len().is_multiple_of(16) {
        return Err(malformed(format!("an encrypted payload of {} bytes", body.len())));
    }
    let (iv, data) = body.split_at(16);
    let iv: [u8; 16] = iv.try_into().expect("16 bytes");
    let mut block = data.to_vec();
    let plain = cbc::Decryptor::<aes::Aes128>::new(key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut block)
        .map_err(|_| malformed("an encrypted payload that does not decrypt"))?;
    let pad = usize::from(*plain.last().expect("whole blocks"));
    if pad + 1 > plain.len() || (1..=pad).zip(&plain[plain.len() - 1 - pad..]).any(|(want, got)| want as u8 != *got) {
        return Err(malformed("a confidentiality trailer that does not add up"));
    }
    Ok(plain[..plain.len() - 1 - pad].to_vec())
}

/// An IPMI request in LAN format (section 13.8) to the BMC, LUN 0.
pub fn ipmi_request(netfn: u8, command: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![BMC_ADDRESS, netfn << 2];
    out.push(checksum(&out));
    let start = out.len();
    out.extend_from_slice(&[CONSOLE_ADDRESS, (rq_seq & 0x3f) << 2, command]);
    out.extend_from_slice(data);
    let sum = checksum(&out[start..]);
    out.push(sum);
    out
}

/// An IPMI response in LAN format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpmiResponse {
    pub netfn: u8,
    pub command: u8,
    pub rq_seq: u8,
    pub completion_code: u8,
    pub data: Vec<u8>,
}

pub fn parse_ipmi_response(bytes: &[u8]) -> Result<IpmiResponse, Malformed> {
    if bytes.len() < 8 {
        return Err(malformed(format!("an IPMI response of {} bytes", bytes.len())));
    }
    if checksum(&bytes[..2]) != bytes[2] || checksum(&bytes[3..bytes.len() - 1]) != bytes[bytes.len() - 1] {
        return Err(malformed("an IPMI response with a wrong checksum"));
    }
    Ok(IpmiResponse {
        netfn: bytes[1] >> 2,
        command: bytes[5],
        rq_seq: bytes[4] >> 2,
        completion_code: bytes[6],
        data: bytes[7..bytes.len() - 1].to_vec(),
    })
}

/// Two's-complement checksum: the bytes and it add up to 0.
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte)).wrapping_neg()
}

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `code` is the HMAC-SHA1 (or its leading part) of `parts`, compared in constant time.
fn hmac_verify(key: &[u8], parts: &[&[u8]], code: &[u8]) -> bool {
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.verify_truncated_left(code).is_ok()
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests;
