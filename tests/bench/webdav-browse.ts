// webdav.browse: what a file manager does when it opens a folder of photos: PROPFIND Depth 1,
// then GET of the first 64 KiB of every file (thumbnails, EXIF) over 6 parallel connections.
import { Agent } from 'node:http';
import { davFetch, type Dav } from './webdav-request';

const PROPFIND = '<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><resourcetype/><getcontentlength/><getlastmodified/><getcontenttype/></prop></propfind>';

/** Opens `folder` (e.g. "photos/") on a target; checks every file and byte; returns seconds. */
export async function browse(d: Dav, folder: string, files: number, fileBytes: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 6 });
  const head = Math.min(65_536, fileBytes);
  try {
    const t0 = process.hrtime.bigint();
    const list = await davFetch(d, 'PROPFIND', folder, { depth: '1', 'content-type': 'application/xml' }, agent, PROPFIND);
    if (list.status !== 207) throw new Error(`PROPFIND ${folder}: ${list.status}`);
    const base = new URL(folder, d.url).pathname;
    const hrefs = [...list.text.matchAll(/<(?:[A-Za-z0-9]+:)?href>([^<]+)<\//g)].map((m) => new URL(m[1].trim(), d.url).pathname).filter((p) => p !== base && !p.endsWith('/'));
    if (hrefs.length !== files) throw new Error(`PROPFIND listed ${hrefs.length} files of ${files}`);
    await Promise.all(
      hrefs.map(async (p) => {
        const r = await davFetch(d, 'GET', p, { range: `bytes=0-${head - 1}` }, agent, undefined, false);
        if (r.status !== 206 || r.bytes !== head) throw new Error(`GET ${p} bytes=0-${head - 1}: ${r.status}, ${r.bytes} bytes`);
      }),
    );
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    agent.destroy();
  }
}
