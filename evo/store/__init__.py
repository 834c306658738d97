"""Storage: the Parquet lineage (its schema and row builders), checkpoints, and the DuckDB reader
every view and analysis goes through."""
