-- Persistence applies JOBS partition by partition: one watermark per partition.
ALTER TABLE watermarks ADD COLUMN partition integer NOT NULL DEFAULT 0;
ALTER TABLE watermarks DROP CONSTRAINT watermarks_pkey;
ALTER TABLE watermarks ADD PRIMARY KEY (stream, partition);
