import Database from 'better-sqlite3';
import { join } from 'node:path';

/**
 * Problems with a home's index, as strings ([] when consistent): SQLite integrity, foreign
 * keys, every non-root entry under a directory, one root per location, hashes only on files
 * and every file hash backed by a blob.
 */
export function indexProblems(home: string): string[] {
  const db = new Database(join(home, 'index.db'), { readonly: true });
  try {
    const out: string[] = [];
    const ic = db.pragma('integrity_check', { simple: true });
    if (ic !== 'ok') out.push(`integrity_check: ${String(ic)}`);
    for (const r of db.pragma('foreign_key_check') as unknown[]) out.push(`foreign key: ${JSON.stringify(r)}`);
    const q = (sql: string, what: string) => {
      for (const r of db.prepare(sql).all()) out.push(`${what}: ${JSON.stringify(r)}`);
    };
    q(
      `SELECT c.id, c.name FROM entries c LEFT JOIN entries p ON p.id = c.parent_id
       WHERE c.parent_id IS NOT NULL AND (p.id IS NULL OR p.type != 'dir' OR p.location_id != c.location_id)`,
      'entry not under a directory',
    );
    q(`SELECT l.name FROM locations l WHERE (SELECT count(*) FROM entries e WHERE e.location_id = l.id AND e.parent_id IS NULL) > 1`, 'several roots');
    q(`SELECT id, name FROM entries WHERE hash IS NOT NULL AND type != 'file'`, 'hash on a non-file');
    q(`SELECT e.id, e.name FROM entries e LEFT JOIN blobs b ON b.hash = e.hash WHERE e.hash IS NOT NULL AND b.hash IS NULL`, 'hash without blob');
    q(`SELECT e.id, e.name FROM entries e JOIN blobs b ON b.hash = e.hash WHERE b.size != e.size`, 'size differs from blob');
    return out;
  } finally {
    db.close();
  }
}
