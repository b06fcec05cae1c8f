-- File bytes stored out of line and uncompressed (STORAGE EXTERNAL), so that a part of a
-- file is read by fetching only the TOAST chunks it covers. A peer serves a file in parts
-- (peers_file_part: substring); on a compressed value each part decompressed from the start
-- up to itself: a 50 MB text file (numbers, which pglz halves) took 2.3 s to serve in 1 MiB
-- parts, against 0.16 s for 50 MB it could not compress. Costs the disk what pglz saved.
-- Applies to values written from now on; earlier ones keep their form.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
