-- Out-of-band management: each host's BMC (driver, address, credentials), the host's OOBM switch,
-- and the power state the background sync last read. Zones and clusters already carry their
-- oobm_enabled switch (initial schema); OOBM is in effect for a host only when all three are on.
--
-- password_sealed: the BMC password encrypted with AES-256-GCM under the server's secrets key
-- (`v1:` + hex of nonce and ciphertext), bound to the host id; never stored or shown in clear.
-- power_state: on | off | unknown as last read (NULL: never read); power_read_at: when.
-- last_error_kind / last_error: the last failed BMC call (classified; no secrets), NULL after a success.
-- last_auth_alert_at: when an oobm-auth-error alert was last raised for the host (at most one a day).
CREATE TABLE host_oobm (
    host_id TEXT PRIMARY KEY REFERENCES hosts(id) ON DELETE CASCADE,
    driver TEXT NOT NULL,
    address TEXT NOT NULL,
    port BIGINT NOT NULL,
    username TEXT NOT NULL,
    password_sealed TEXT NOT NULL,
    ipmi_cipher_suite BIGINT NOT NULL DEFAULT 3,
    redfish_https BIGINT NOT NULL DEFAULT 1,
    redfish_accept_self_signed BIGINT NOT NULL DEFAULT 0,
    redfish_auth TEXT NOT NULL DEFAULT 'basic',
    redfish_system_id TEXT,
    enabled BIGINT NOT NULL DEFAULT 0,
    power_state TEXT,
    power_read_at BIGINT,
    last_error_kind TEXT,
    last_error TEXT,
    last_auth_alert_at BIGINT,
    updated_at BIGINT NOT NULL
);
