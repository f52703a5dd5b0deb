//! Known vectors for the lanplus wire format. The IPMI 2.0 specification gives formulas but no
//! numbers, so the numbers come from one real exchange between two implementations we did not
//! write: Debian's ipmitool 1.8.19 (`-I lanplus -C 3 -vvvvv`, which prints its random numbers, keys
//! and every datagram) against OpenIPMI's ipmi_sim 2.0.33, user `admin`, password `pw1`. Every
//! byte below is what went over the wire or what ipmitool printed as derived from it.

use super::*;

fn bytes(text: &str) -> Vec<u8> {
    hex::decode(text.split_whitespace().collect::<String>()).unwrap()
}

fn array<const N: usize>(text: &str) -> [u8; N] {
    bytes(text).try_into().unwrap()
}

const CONSOLE_SESSION_ID: u32 = 0xa0a2_a3a4;
const BMC_SESSION_ID: u32 = 0x0000_0302;
const ROLE: u8 = PRIVILEGE_ADMINISTRATOR | NAME_ONLY_LOOKUP;

fn exchange() -> RakpExchange<'static> {
    RakpExchange {
        password: b"pw1",
        username: b"admin",
        role: ROLE,
        console_session_id: CONSOLE_SESSION_ID,
        bmc_session_id: BMC_SESSION_ID,
        console_random: array("9b 93 13 67 5a 5c 80 23 24 e1 14 25 d6 2b 30 f1"),
        bmc_random: array("a1 86 bd 03 52 9a 9d fc 3a d4 88 68 75 58 41 c7"),
        bmc_guid: array("a1 23 45 67 89 ab cd ef a1 23 45 67 89 ab cd ef"),
    }
}

fn suite3_keys() -> SessionKeys {
    SessionKeys::derive(&exchange().session_integrity_key())
}

#[test]
fn session_setup_packets_are_byte_for_byte_those_of_ipmitool() {
    let suite = CipherSuite::from_id(3).unwrap();
    let open = encode_packet(
        payload::OPEN_SESSION_REQUEST,
        0,
        0,
        &open_session_request(0x00, CONSOLE_SESSION_ID, suite),
        None,
        [0; 16],
    );
    assert_eq!(
        open,
        bytes(
            "06 00 ff 07 06 10 00 00 00 00 00 00 00 00 20 00 00 00 00 00 a4 a3 a2 a0 00 00 00 08 01 00 00 00
             01 00 00 08 01 00 00 00 02 00 00 08 01 00 00 00"
        )
    );

    let answer = decode_packet(
        &bytes(
            "06 00 ff 07 06 11 00 00 00 00 00 00 00 00 24 00 00 00 00 00 a4 a3 a2 a0 02 03 00 00 00 00 00 08
             01 00 00 00 01 00 00 08 01 00 00 00 02 00 00 08 01 00 00 00",
        ),
        None,
    )
    .unwrap();
    assert_eq!(answer.payload_type, payload::OPEN_SESSION_RESPONSE);
    let opened = parse_open_session_response(&answer.payload).unwrap();
    assert_eq!(
        opened,
        OpenSessionResponse {
            tag: 0,
            status: 0,
            console_session_id: CONSOLE_SESSION_ID,
            bmc_session_id: BMC_SESSION_ID,
            algorithms: (1, 1, 1),
        }
    );

    let exchange = exchange();
    let first = encode_packet(
        payload::RAKP_1,
        0,
        0,
        &rakp1(0x00, BMC_SESSION_ID, &exchange.console_random, ROLE, b"admin"),
        None,
        [0; 16],
    );
    assert_eq!(
        first,
        bytes(
            "06 00 ff 07 06 12 00 00 00 00 00 00 00 00 21 00 00 00 00 00 02 03 00 00 9b 93 13 67 5a 5c 80 23
             24 e1 14 25 d6 2b 30 f1 14 00 00 05 61 64 6d 69 6e"
        )
    );

    let second = decode_packet(
        &bytes(
            "06 00 ff 07 06 13 00 00 00 00 00 00 00 00 3c 00 00 00 00 00 a4 a3 a2 a0 a1 86 bd 03 52 9a 9d fc
             3a d4 88 68 75 58 41 c7 a1 23 45 67 89 ab cd ef a1 23 45 67 89 ab cd ef 2e 2d 50 98 ed c6 60 82
             a5 99 64 99 4d c0 76 98 c4 64 54 80",
        ),
        None,
    )
    .unwrap();
    let rakp2 = parse_rakp2(&second.payload).unwrap();
    assert_eq!((rakp2.status, rakp2.console_session_id), (0, CONSOLE_SESSION_ID));
    assert_eq!((rakp2.bmc_random, rakp2.bmc_guid), (exchange.bmc_random, exchange.bmc_guid));
    assert!(exchange.rakp2_matches(&rakp2.auth_code), "the BMC knows the password");

    let third =
        encode_packet(payload::RAKP_3, 0, 0, &rakp3(0x00, BMC_SESSION_ID, &exchange.rakp3_code()), None, [0; 16]);
    assert_eq!(
        third,
        bytes(
            "06 00 ff 07 06 14 00 00 00 00 00 00 00 00 1c 00 00 00 00 00 02 03 00 00 f1 4a 6a 76 ac 4a 94 7e
             99 31 3b a5 9f a4 20 c4 b2 cd cc ae"
        )
    );

    let fourth = decode_packet(
        &bytes(
            "06 00 ff 07 06 15 00 00 00 00 00 00 00 00 14 00 00 00 00 00 a4 a3 a2 a0 c9 53 c0 93 d2 8a 88 8b
             2d a3 17 84",
        ),
        None,
    )
    .unwrap();
    let rakp4 = parse_rakp4(&fourth.payload).unwrap();
    assert_eq!((rakp4.status, rakp4.console_session_id), (0, CONSOLE_SESSION_ID));
    let sik = exchange.session_integrity_key();
    assert!(exchange.rakp4_matches(&sik, &rakp4.integrity_check), "the BMC derived the same SIK");
}

#[test]
fn keys_derive_as_ipmitool_derived_them() {
    let exchange = exchange();
    let sik = exchange.session_integrity_key();
    assert_eq!(sik.0, array("3f 05 d3 18 8a cf 03 7f e8 bc a0 ad 4c a4 b4 9c 41 8d 20 06"));
    let keys = SessionKeys::derive(&sik);
    assert_eq!(keys.k1, array("19 17 a1 99 09 67 6d b2 54 bc ba ca fd 45 98 64 56 5a 46 a3"));
    // K2 was 42 b1 … 3c 8a c8 be 86 7f; AES-CBC-128 takes its first 16 bytes.
    assert_eq!(keys.aes, array("42 b1 df 4a a5 d7 f9 55 2d cf 99 ed e8 6c 3c 8a"));
}

#[test]
fn a_wrong_password_fails_both_rakp_checks() {
    let wrong = RakpExchange { password: b"pw2", ..exchange() };
    let rakp2_code = bytes("2e 2d 50 98 ed c6 60 82 a5 99 64 99 4d c0 76 98 c4 64 54 80");
    assert!(!wrong.rakp2_matches(&rakp2_code));
    assert!(!wrong.rakp2_matches(&[]), "an empty code proves nothing");
    assert!(!wrong.rakp2_matches(&rakp2_code[..12]) && exchange().rakp2_matches(&rakp2_code[..12]));
    let icv = bytes("c9 53 c0 93 d2 8a 88 8b 2d a3 17 84");
    assert!(!wrong.rakp4_matches(&wrong.session_integrity_key(), &icv));
    assert!(!exchange().rakp4_matches(&exchange().session_integrity_key(), &icv[..11]));
}

/// Set Session Privilege Level (App 0x3B, ADMINISTRATOR), rqSeq 1, session sequence 3.
const SET_PRIVILEGE_REQUEST: &str =
    "06 00 ff 07 06 c0 02 03 00 00 03 00 00 00 20 00 62 70 15 38 18 71 dd 32 eb d4 b2 ea
    b4 ec dd 65 b5 2e 6b f0 c5 d6 c9 cb 11 f1 3d 13 11 37 2e 60 ff ff 02 07 e4 94 04 da 0f 34 3f e4 36 a8 98 00";
const SET_PRIVILEGE_ANSWER: &str = "06 00 ff 07 06 c0 a4 a3 a2 a0 01 00 00 00 20 00 40 78 b4 b1 9c 0c a8 88 31 b2 a1 db
    f9 93 d8 25 42 c3 4a 95 20 44 70 40 68 ba e7 cb 9c 01 8b 7f ff ff 02 07 96 49 ef 0b 30 37 de 96 e8 50 9d 76";

#[test]
fn session_packets_encrypt_and_sign_as_ipmitool_did() {
    let keys = suite3_keys();
    let protection = Protection { suite: CipherSuite::from_id(3).unwrap(), keys: &keys };
    let message = ipmi_request(0x06, 0x3b, 1, &[PRIVILEGE_ADMINISTRATOR]);
    assert_eq!(message, bytes("20 18 c8 81 04 3b 04 3c"));
    let iv = array("62 70 15 38 18 71 dd 32 eb d4 b2 ea b4 ec dd 65");
    let packet = encode_packet(payload::IPMI, BMC_SESSION_ID, 3, &message, Some(&protection), iv);
    assert_eq!(packet, bytes(SET_PRIVILEGE_REQUEST));

    let answer = decode_packet(&bytes(SET_PRIVILEGE_ANSWER), Some(&protection)).unwrap();
    assert_eq!((answer.payload_type, answer.session_id, answer.sequence), (payload::IPMI, CONSOLE_SESSION_ID, 1));
    assert_eq!(answer.payload, bytes("81 1c 63 20 04 3b 00 04 9d"));
    let response = parse_ipmi_response(&answer.payload).unwrap();
    assert_eq!(
        response,
        IpmiResponse { netfn: 0x07, command: 0x3b, rq_seq: 1, completion_code: 0, data: vec![PRIVILEGE_ADMINISTRATOR] }
    );
}

#[test]
fn get_chassis_status_round_trip_from_the_capture() {
    let keys = suite3_keys();
    let protection = Protection { suite: CipherSuite::from_id(3).unwrap(), keys: &keys };
    let iv = array("5b d0 db ed 0e f1 80 b2 f8 a2 9e d7 f4 70 e9 ea");
    let packet =
        encode_packet(payload::IPMI, BMC_SESSION_ID, 8, &ipmi_request(0x00, 0x01, 6, &[]), Some(&protection), iv);
    assert_eq!(
        packet,
        bytes(
            "06 00 ff 07 06 c0 02 03 00 00 08 00 00 00 20 00 5b d0 db ed 0e f1 80 b2 f8 a2 9e d7 f4 70 e9 ea
             5b 9d 8c 08 a9 4e 97 5d 0e fa 67 6f 8e 12 52 ae ff ff 02 07 e8 d9 4e c9 ac 60 1f a8 21 c6 07 cb"
        )
    );
    let answer = decode_packet(
        &bytes(
            "06 00 ff 07 06 c0 a4 a3 a2 a0 06 00 00 00 20 00 be 5c 6f ec 51 39 76 c5 ae 71 65 9f 7f e3 e4 da
             bc b5 2d 1d 61 33 17 4c 2d e9 e6 13 a8 8c b1 08 ff ff 02 07 d5 4f 0a 0f 55 1e 81 05 f5 64 91 27",
        ),
        Some(&protection),
    )
    .unwrap();
    let response = parse_ipmi_response(&answer.payload).unwrap();
    assert_eq!((response.netfn, response.command, response.rq_seq, response.completion_code), (0x01, 0x01, 6, 0));
    assert_eq!(response.data, vec![0x01, 0x00, 0x00], "bit 0 of the first byte: power is on");
}

#[test]
fn tampered_or_unprotected_answers_are_refused() {
    let keys = suite3_keys();
    let protection = Protection { suite: CipherSuite::from_id(3).unwrap(), keys: &keys };
    let good = bytes(SET_PRIVILEGE_ANSWER);
    for index in [5, 7, 12, 20, 40, 50, 60] {
        let mut bad = good.clone();
        bad[index] ^= 0x01;
        assert!(decode_packet(&bad, Some(&protection)).is_err(), "byte {index} flipped");
    }
    assert!(decode_packet(&good[..good.len() - 1], Some(&protection)).is_err(), "cut short");

    // The same payload without AuthCode and encryption inside a suite 3 session.
    let plain =
        encode_packet(payload::IPMI, CONSOLE_SESSION_ID, 1, &bytes("81 1c 63 20 04 3b 00 04 9d"), None, [0; 16]);
    let error = decode_packet(&plain, Some(&protection)).unwrap_err();
    assert!(error.0.contains("without AuthCode"), "{error}");
    // Signed but not encrypted (as in suite 2) inside a suite 3 session.
    let suite2 = Protection { suite: CipherSuite::from_id(2).unwrap(), keys: &keys };
    let signed = encode_packet(
        payload::IPMI,
        CONSOLE_SESSION_ID,
        1,
        &bytes("81 1c 63 20 04 3b 00 04 9d"),
        Some(&suite2),
        [0; 16],
    );
    assert!(decode_packet(&signed, Some(&suite2)).is_ok());
    assert!(decode_packet(&signed, Some(&protection)).unwrap_err().0.contains("unencrypted"));
    // Another session's keys.
    let other = SessionKeys::derive(&RakpExchange { password: b"other", ..exchange() }.session_integrity_key());
    let foreign = Protection { suite: CipherSuite::from_id(3).unwrap(), keys: &other };
    assert!(decode_packet(&good, Some(&foreign)).unwrap_err().0.contains("AuthCode"));
    // Not RMCP+ at all.
    assert!(decode_packet(b"hello, this is not IPMI at all", None).is_err());
}

#[test]
fn confidentiality_round_trips_every_length() {
    let keys = suite3_keys();
    for length in 0..40 {
        let data: Vec<u8> = (0..length).map(|byte| byte as u8).collect();
        let sealed = encrypt(&keys.aes, [7; 16], &data);
        assert_eq!(sealed.len() % 16, 0);
        assert_eq!(decrypt(&keys.aes, &sealed).unwrap(), data, "{length} bytes");
    }
}

#[test]
fn ipmi_messages_carry_checksums() {
    // Get Device ID as in every capture: 20 18 c8 | 81 rqSeq cmd | checksum.
    assert_eq!(ipmi_request(0x06, 0x01, 3, &[]), bytes("20 18 c8 81 0c 01 72"));
    // Chassis Control, power down.
    assert_eq!(ipmi_request(0x00, 0x02, 0, &[0x00]), bytes("20 00 e0 81 00 02 00 7d"));
    assert!(parse_ipmi_response(&bytes("81 1c 63 20 04 3b 00 04 9c")).is_err(), "wrong second checksum");
    assert!(parse_ipmi_response(&bytes("81 1c 64 20 04 3b 00 04 9d")).is_err(), "wrong first checksum");
    assert!(parse_ipmi_response(&bytes("81 1c 63")).is_err());
}

#[test]
fn only_the_sha1_suites_are_spoken_here() {
    assert_eq!(CipherSuite::from_id(0), None, "no authentication: never");
    assert_eq!(CipherSuite::from_id(3).map(CipherSuite::algorithms), Some((1, 1, 1)));
    assert_eq!(CipherSuite::from_id(2).map(CipherSuite::algorithms), Some((1, 1, 0)));
    assert_eq!(CipherSuite::from_id(1).map(CipherSuite::algorithms), Some((1, 0, 0)));
    for other in [4, 6, 7, 8, 11, 12, 15, 16, 17] {
        assert_eq!(CipherSuite::from_id(other), None, "suite {other}");
    }
    // A refusal may stop after the console's session id.
    let refused = parse_open_session_response(&bytes("00 11 00 00 a4 a3 a2 a0")).unwrap();
    assert_eq!((refused.status, refused.console_session_id), (0x11, CONSOLE_SESSION_ID));
    assert!(parse_open_session_response(&bytes("00 00 00 00 a4 a3 a2 a0")).is_err(), "success needs the rest");
}
