-- Alert mail: the SMTP settings (one row) and the outbox (at most one mail per alert).
--
-- email_settings holds a single row (id = 1) once an admin saved the form. The SMTP password is
-- sealed with the server's secrets key (SecretBox, context 'smtp-password'); '' means none.
-- enabled_at is when mail was last switched on: alerts raised before it are never mailed, so
-- switching mail on does not flood the recipients with history.
CREATE TABLE email_settings (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    enabled BIGINT NOT NULL,
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    security TEXT NOT NULL,
    username TEXT NOT NULL,
    password_sealed TEXT NOT NULL,
    from_address TEXT NOT NULL,
    recipients TEXT NOT NULL,
    alert_kinds TEXT NOT NULL,
    all_alert_kinds BIGINT NOT NULL,
    enabled_at BIGINT,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- One row per mailed alert; the unique alert_id makes queueing idempotent (a repeat, a restart or a
-- second server inserting the same alert's mail changes nothing). status: pending (waiting for
-- next_attempt_at), sending (claimed by claimed_by until claim_expires_at; a crashed sender's claim
-- lapses), sent, failed (gave up; last_error says why). Subject, body and recipients are fixed when
-- the mail is queued.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    alert_kind TEXT NOT NULL,
    alert_severity TEXT NOT NULL,
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_by TEXT,
    claim_expires_at BIGINT,
    last_error TEXT,
    smtp_reply TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX mail_outbox_one_per_alert ON mail_outbox (alert_id);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_created_at ON mail_outbox (created_at);
