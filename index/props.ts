import type { Statement } from 'better-sqlite3';
import type { Db } from './db';

/** A dead property (WebDAV PROPPATCH) of an entry: `value` is the XML inner text/markup. */
export interface PropRow {
  ns: string;
  name: string;
  value: string;
}

/** Dead properties, kept with their entry (deleted with it). Methods throw SqliteError when the index cannot be written. */
export class PropStore {
  private readonly list: Statement;

  constructor(private readonly db: Db) {
    this.list = db.prepare('SELECT ns, name, value FROM props WHERE entry_id = ? ORDER BY ns, name');
  }

  of(entryId: number): PropRow[] {
    return this.list.all(entryId) as PropRow[];
  }

  /** Sets and removes properties of one entry atomically (all or nothing). */
  patch(entryId: number, set: PropRow[], remove: { ns: string; name: string }[]): void {
    const db = this.db;
    db.transaction(() => {
      const del = db.prepare('DELETE FROM props WHERE entry_id = ? AND ns = ? AND name = ?');
      const put = db.prepare('INSERT INTO props (entry_id, ns, name, value) VALUES (?, ?, ?, ?) ON CONFLICT(entry_id, ns, name) DO UPDATE SET value = excluded.value');
      for (const p of remove) del.run(entryId, p.ns, p.name);
      for (const p of set) put.run(entryId, p.ns, p.name, p.value);
    }).immediate();
  }
}
