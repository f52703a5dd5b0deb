-- The console language each user chose ('en' or 'ko'); NULL until they choose one, so the console
-- keeps the browser's choice for them.
ALTER TABLE users ADD COLUMN language TEXT;
