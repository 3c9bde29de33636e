/**
 * The triggers that keep location_stats in step with entries. Migrations 4, 6 and 7 create them
 * (6 and 7 rebuild the entries table, which drops its triggers); the text is the same every time,
 * so a released migration's SQL is unchanged by sharing it.
 */
const LOCATION_STATS_TRIGGERS = `
  CREATE TRIGGER location_stats_insert AFTER INSERT ON entries BEGIN
    INSERT INTO location_stats (location_id, entries, files, dirs, bytes, unhashed)
      VALUES (new.location_id, 1, new.type = 'file', new.type = 'dir', CASE WHEN new.type = 'file' THEN new.size ELSE 0 END, new.type = 'file' AND new.hash IS NULL)
      ON CONFLICT(location_id) DO UPDATE SET entries = entries + 1, files = files + excluded.files, dirs = dirs + excluded.dirs,
        bytes = bytes + excluded.bytes, unhashed = unhashed + excluded.unhashed;
  END;
  CREATE TRIGGER location_stats_delete AFTER DELETE ON entries BEGIN
    UPDATE location_stats SET entries = entries - 1, files = files - (old.type = 'file'), dirs = dirs - (old.type = 'dir'),
      bytes = bytes - CASE WHEN old.type = 'file' THEN old.size ELSE 0 END, unhashed = unhashed - (old.type = 'file' AND old.hash IS NULL)
      WHERE location_id = old.location_id;
  END;
  CREATE TRIGGER location_stats_update AFTER UPDATE OF type, size, hash, location_id ON entries BEGIN
    UPDATE location_stats SET entries = entries - 1, files = files - (old.type = 'file'), dirs = dirs - (old.type = 'dir'),
      bytes = bytes - CASE WHEN old.type = 'file' THEN old.size ELSE 0 END, unhashed = unhashed - (old.type = 'file' AND old.hash IS NULL)
      WHERE location_id = old.location_id;
    INSERT INTO location_stats (location_id, entries, files, dirs, bytes, unhashed)
      VALUES (new.location_id, 1, new.type = 'file', new.type = 'dir', CASE WHEN new.type = 'file' THEN new.size ELSE 0 END, new.type = 'file' AND new.hash IS NULL)
      ON CONFLICT(location_id) DO UPDATE SET entries = entries + 1, files = files + excluded.files, dirs = dirs + excluded.dirs,
        bytes = bytes + excluded.bytes, unhashed = unhashed + excluded.unhashed;
  END;
`;

/**
 * Forward-only schema migrations. Each runs once, in order, inside a transaction;
 * PRAGMA user_version records how many have run. Never edit a released migration:
 * append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the whole data model the later layers need (nodes, locations, entries, blobs,
  //    change log, dead properties, upload queue, meta).
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,              -- SHA-256 of the node's certificate (hex), or a random id before keys exist
    name TEXT NOT NULL,
    is_self INTEGER NOT NULL DEFAULT 0,
    addresses TEXT NOT NULL DEFAULT '[]',
    paired_at INTEGER,
    last_seen INTEGER
  );

  CREATE TABLE locations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uri TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner_node TEXT NOT NULL REFERENCES nodes(id) ON UPDATE CASCADE,
    readonly INTEGER NOT NULL DEFAULT 0,
    online INTEGER NOT NULL DEFAULT 1,
    options TEXT NOT NULL DEFAULT '{}',  -- JSON: ignore rules, provider settings
    last_scan INTEGER,
    remote_seq INTEGER NOT NULL DEFAULT 0, -- for peer locations: last change applied
    created_at INTEGER NOT NULL
  );

  CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES entries(id) ON DELETE CASCADE, -- NULL for a location's root
    name TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink')),
    size INTEGER NOT NULL DEFAULT 0,
    mtime_sec INTEGER NOT NULL DEFAULT 0,
    mtime_nsec INTEGER NOT NULL DEFAULT 0,
    mode INTEGER NOT NULL DEFAULT 0,
    uid INTEGER,
    gid INTEGER,
    version TEXT,                      -- inode:size:mtime locally, ETag/revision remotely
    hash TEXT,                         -- BLAKE3-256 hex of the content, NULL while unknown
    target TEXT                        -- symlink target
  );
  CREATE UNIQUE INDEX entries_child ON entries(parent_id, name);
  CREATE UNIQUE INDEX entries_root ON entries(location_id) WHERE parent_id IS NULL;
  CREATE INDEX entries_hash ON entries(hash) WHERE hash IS NOT NULL;
  CREATE INDEX entries_location ON entries(location_id);

  CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    block_size INTEGER NOT NULL,
    block_hashes BLOB NOT NULL          -- 32 bytes per block, concatenated
  );

  -- This node's change log: one row per entry change, appended in the same transaction.
  CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    location_id INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('put', 'delete', 'move')),
    path TEXT NOT NULL,
    to_path TEXT,
    entry TEXT,                         -- JSON of the entry after a put
    at INTEGER NOT NULL
  );

  CREATE TABLE props (
    entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (entry_id, ns, name)
  );

  CREATE TABLE uploads (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    staging_file TEXT NOT NULL,
    base_version TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL
  );
  `,
  // 2: what another node says is only trusted as far as it can be checked (issue 12).
  //    blobs.trusted = 1: the block hashes were computed here from the bytes (or are self-checking:
  //    one block). Lists a peer sent for multi-block content are kept per source in
  //    peer_block_lists and verify only that source's bytes. Rows that may have come from a
  //    peer before this migration lose their trust; peers' modes keep their permission bits only.
  `
  ALTER TABLE blobs ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1;
  UPDATE blobs SET trusted = 0 WHERE length(block_hashes) > 32
    AND hash IN (SELECT e.hash FROM entries e JOIN locations l ON l.id = e.location_id WHERE l.kind = 'peer' AND e.hash IS NOT NULL);
  CREATE TABLE peer_block_lists (
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    block_size INTEGER NOT NULL,
    block_hashes BLOB NOT NULL,
    PRIMARY KEY (location_id, hash)
  );
  UPDATE entries SET mode = mode & 511 WHERE location_id IN (SELECT id FROM locations WHERE kind = 'peer');
  `,
  // 3: safety features (issue 18): when each location was last seen, pins (available offline),
  //    and when each entry's content was last verified by fsck.
  `
  ALTER TABLE locations ADD COLUMN last_seen INTEGER;

  CREATE TABLE pins (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    path TEXT NOT NULL,                -- relative path in the location ('' for its root)
    created_at INTEGER NOT NULL,
    UNIQUE (location_id, path)
  );

  CREATE TABLE verified (
    entry_id INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,                -- the content that was verified (stale once the entry changes)
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL
  );
  `,
  // 4 (issue 19, scale): per-location counters kept by
  //    triggers, so `vdfs status` reads one row per location instead of scanning a million
  //    entries. A cascade (a removed directory, a removed location) fires the delete trigger
  //    for every row it removes, so the counters stay exact.
  `
  CREATE TABLE location_stats (
    location_id INTEGER PRIMARY KEY,
    entries INTEGER NOT NULL DEFAULT 0,
    files INTEGER NOT NULL DEFAULT 0,
    dirs INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    unhashed INTEGER NOT NULL DEFAULT 0
  );
  INSERT INTO location_stats (location_id, entries, files, dirs, bytes, unhashed)
    SELECT location_id, count(*), sum(type = 'file'), sum(type = 'dir'), coalesce(sum(CASE WHEN type = 'file' THEN size END), 0), sum(type = 'file' AND hash IS NULL)
    FROM entries GROUP BY location_id;
  ${LOCATION_STATS_TRIGGERS}
  CREATE TRIGGER location_stats_gone AFTER DELETE ON locations BEGIN
    DELETE FROM location_stats WHERE location_id = old.id;
  END;
  `,
  // 5 (issue 14): deletes owed at a cloud source. An upload that lands at a name the file has
  //    already left (deleted or renamed while it was uploading) must be removed there; when the
  //    source is unreachable that is retried from here, across restarts. Only `version` is
  //    deleted: a newer object at that name is never touched.
  `
  CREATE TABLE remote_deletes (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    version TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX remote_deletes_path ON remote_deletes (location_id, path);
  `,
  // 6 (issue 16): special files of local locations (FIFOs, sockets, character and block
  //    devices) are entries: the type CHECK allows them and `rdev` keeps a device's number.
  //    SQLite cannot change a CHECK in place, so the table is rebuilt under the same ids. With
  //    foreign keys on, dropping the old table cascades to props and verified: their rows are
  //    kept aside and put back. The location_stats triggers (migration 4, same text) are
  //    dropped first and made again, with the indexes; the counters are unchanged.
  `
  -- First: the old table's cascade (children deleted while it is dropped) would fire them.
  DROP TRIGGER location_stats_insert;
  DROP TRIGGER location_stats_delete;
  DROP TRIGGER location_stats_update;
  CREATE TEMP TABLE m6_props AS SELECT * FROM props;
  CREATE TEMP TABLE m6_verified AS SELECT * FROM verified;

  CREATE TABLE entries_v6 (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES entries_v6(id) ON DELETE CASCADE, -- NULL for a location's root
    name TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev')),
    size INTEGER NOT NULL DEFAULT 0,
    mtime_sec INTEGER NOT NULL DEFAULT 0,
    mtime_nsec INTEGER NOT NULL DEFAULT 0,
    mode INTEGER NOT NULL DEFAULT 0,
    uid INTEGER,
    gid INTEGER,
    version TEXT,                      -- inode:size:mtime locally, ETag/revision remotely
    hash TEXT,                         -- BLAKE3-256 hex of the content, NULL while unknown
    target TEXT,                       -- symlink target
    rdev INTEGER                       -- device number of a chardev or blockdev (Linux encoding)
  );
  INSERT INTO entries_v6 (id, location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, uid, gid, version, hash, target)
    SELECT id, location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, uid, gid, version, hash, target FROM entries ORDER BY id;
  DROP TABLE entries;
  ALTER TABLE entries_v6 RENAME TO entries;
  CREATE UNIQUE INDEX entries_child ON entries(parent_id, name);
  CREATE UNIQUE INDEX entries_root ON entries(location_id) WHERE parent_id IS NULL;
  CREATE INDEX entries_hash ON entries(hash) WHERE hash IS NOT NULL;
  CREATE INDEX entries_location ON entries(location_id);

  INSERT INTO props SELECT * FROM m6_props;
  INSERT INTO verified SELECT * FROM m6_verified;
  DROP TABLE m6_props;
  DROP TABLE m6_verified;

  ${LOCATION_STATS_TRIGGERS}
  `,
  // 7 (issue 19, scale): content hashes as 32-byte BLOBs instead of 64 hex characters, in
  //    entries (and its entries_hash index), blobs, peer_block_lists and verified: about 85 bytes
  //    less per entry. Hex stays the type outside index/ (index/hash-sql.ts converts). blobs
  //    becomes WITHOUT ROWID: its key is its only lookup, so the separate key index goes. The
  //    tables are rebuilt under the same ids, like migration 6 (a column's declared type cannot
  //    change in place), with the location_stats triggers (same text) dropped first and made again.
  `
  DROP TRIGGER location_stats_insert;
  DROP TRIGGER location_stats_delete;
  DROP TRIGGER location_stats_update;
  CREATE TEMP TABLE m7_props AS SELECT * FROM props;
  CREATE TEMP TABLE m7_verified AS SELECT * FROM verified;
  DROP TABLE verified;

  CREATE TABLE entries_v7 (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES entries_v7(id) ON DELETE CASCADE, -- NULL for a location's root
    name TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev')),
    size INTEGER NOT NULL DEFAULT 0,
    mtime_sec INTEGER NOT NULL DEFAULT 0,
    mtime_nsec INTEGER NOT NULL DEFAULT 0,
    mode INTEGER NOT NULL DEFAULT 0,
    uid INTEGER,
    gid INTEGER,
    version TEXT,                      -- inode:size:mtime locally, ETag/revision remotely
    hash BLOB,                         -- BLAKE3-256 of the content (32 bytes), NULL while unknown
    target TEXT,                       -- symlink target
    rdev INTEGER                       -- device number of a chardev or blockdev (Linux encoding)
  );
  INSERT INTO entries_v7 (id, location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, uid, gid, version, hash, target, rdev)
    SELECT id, location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, uid, gid, version, CASE WHEN length(hash) = 64 THEN unhex(hash) END, target, rdev FROM entries ORDER BY id;
  DROP TABLE entries;
  ALTER TABLE entries_v7 RENAME TO entries;
  CREATE UNIQUE INDEX entries_child ON entries(parent_id, name);
  CREATE UNIQUE INDEX entries_root ON entries(location_id) WHERE parent_id IS NULL;
  CREATE INDEX entries_hash ON entries(hash) WHERE hash IS NOT NULL;
  CREATE INDEX entries_location ON entries(location_id);
  INSERT INTO props SELECT * FROM m7_props;
  DROP TABLE m7_props;

  CREATE TABLE verified (
    entry_id INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
    hash BLOB NOT NULL,                -- the content that was verified (stale once the entry changes)
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL
  );
  INSERT INTO verified (entry_id, hash, at, ok) SELECT entry_id, unhex(hash), at, ok FROM m7_verified WHERE length(hash) = 64 AND unhex(hash) IS NOT NULL;
  DROP TABLE m7_verified;

  CREATE TABLE blobs_v7 (
    hash BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    block_size INTEGER NOT NULL,
    block_hashes BLOB NOT NULL,         -- 32 bytes per block, concatenated
    trusted INTEGER NOT NULL DEFAULT 1
  ) WITHOUT ROWID;
  INSERT INTO blobs_v7 (hash, size, block_size, block_hashes, trusted)
    SELECT unhex(hash), size, block_size, block_hashes, trusted FROM blobs WHERE length(hash) = 64 AND unhex(hash) IS NOT NULL;
  DROP TABLE blobs;
  ALTER TABLE blobs_v7 RENAME TO blobs;

  CREATE TABLE peer_block_lists_v7 (
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    hash BLOB NOT NULL,
    block_size INTEGER NOT NULL,
    block_hashes BLOB NOT NULL,
    PRIMARY KEY (location_id, hash)
  );
  INSERT INTO peer_block_lists_v7 (location_id, hash, block_size, block_hashes)
    SELECT location_id, unhex(hash), block_size, block_hashes FROM peer_block_lists WHERE length(hash) = 64 AND unhex(hash) IS NOT NULL;
  DROP TABLE peer_block_lists;
  ALTER TABLE peer_block_lists_v7 RENAME TO peer_block_lists;

  -- Counted again: a hash that was not 64 hex digits (never written by vdfs) is now NULL, i.e. unhashed.
  DELETE FROM location_stats;
  INSERT INTO location_stats (location_id, entries, files, dirs, bytes, unhashed)
    SELECT location_id, count(*), sum(type = 'file'), sum(type = 'dir'), coalesce(sum(CASE WHEN type = 'file' THEN size END), 0), sum(type = 'file' AND hash IS NULL)
    FROM entries GROUP BY location_id;

  ${LOCATION_STATS_TRIGGERS}
  `,
  // 8 (issue 17): every open of a file of a cloud location asks whether an upload of it is
  //    pending (UploadStore.pending, by location and path). Without an index that read the whole
  //    queue: a location with thousands of writes waiting offline made every open scan them.
  `
  CREATE INDEX uploads_at ON uploads (location_id, path);
  `,
];
