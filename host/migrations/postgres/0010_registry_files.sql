-- The transform registry, when the host runs on PostgreSQL: every file of the TUF repository
-- (`metadata/…`, `targets/…`, module bytes included) by its repository path, exactly as the
-- registry directory would hold it, so every replica serves the same registry with no shared
-- disk (docs/REGISTRY.md, "The registry in PostgreSQL"). Versioned files are only ever
-- added; `metadata/timestamp.json` and `metadata/root.json` are replaced, in one transaction
-- with the files they name. PostgreSQL only: with SQLite the registry stays in the data
-- directory, so ../sqlite has no 0008.
CREATE TABLE registry_files (
    path  TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL
);
