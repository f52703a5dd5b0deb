-- Progress of a host's preparation for maintenance (JSON of api::v1::MaintenanceProgress), NULL when none.
ALTER TABLE hosts ADD COLUMN maintenance TEXT;
