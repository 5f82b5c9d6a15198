-- Keep only the staged rows of one shard: a valid row goes with its store, a rejected row (whose
-- store id may be missing or wrong) with its place in the file.
DELETE FROM ingest_checked
WHERE CASE
        WHEN reason IS NULL THEN shard_of(store_id, $shards)
        ELSE shard_of($file_sha256 || ':' || line, $shards)
      END <> $shard;
