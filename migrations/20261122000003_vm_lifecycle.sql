-- VM lifecycle: templates (a small catalogue), the network a VM is attached to, HA start order and
-- delay, and host tags on offerings already exist. Templates are seeded here; operators do not edit them yet.
CREATE TABLE templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    os TEXT NOT NULL,
    disk_gb BIGINT NOT NULL
);

INSERT INTO templates (id, name, os, disk_gb) VALUES
    ('6f1c1b8e-0c1a-4f53-9d0e-000000000001', 'debian-12', 'Debian GNU/Linux 12', 10),
    ('6f1c1b8e-0c1a-4f53-9d0e-000000000002', 'rocky-9', 'Rocky Linux 9', 12),
    ('6f1c1b8e-0c1a-4f53-9d0e-000000000003', 'ubuntu-24.04', 'Ubuntu 24.04 LTS', 12),
    ('6f1c1b8e-0c1a-4f53-9d0e-000000000004', 'windows-2022', 'Windows Server 2022', 40);

ALTER TABLE vms ADD COLUMN template_id TEXT NOT NULL DEFAULT '6f1c1b8e-0c1a-4f53-9d0e-000000000001';
ALTER TABLE vms ADD COLUMN network TEXT NOT NULL DEFAULT 'default';
ALTER TABLE vms ADD COLUMN start_order BIGINT NOT NULL DEFAULT 0;
ALTER TABLE vms ADD COLUMN start_delay_seconds BIGINT NOT NULL DEFAULT 0;
-- whether protection was set by an operator rather than taken from the offering
ALTER TABLE vms ADD COLUMN ha_overridden BIGINT NOT NULL DEFAULT 0;
