-- The operator's block list of insecure Home Assistant versions, and the owners' overrides.
-- A new block clears every override (the owner accepted the risk of what was blocked then).
CREATE TABLE version_blocks (
    spec TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE version_overrides (
    instance_id TEXT PRIMARY KEY NOT NULL REFERENCES instances(id),
    created_at INTEGER NOT NULL
);
