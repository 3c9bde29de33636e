import { PeerStore } from '../index/peer-store';
import { formatSize } from './config';
import type { Home } from './home';
import type { Pins } from '../mount/vfs/pins';
import { esc } from '../mount/webdav/html-listing';
import { statusReport, type StatusReport } from './status';

/** The status page's own policy: a static page (sandboxed, no script), inline styles only. */
export const STATUS_PAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

function when(ms: number | null): string {
  return ms === null ? 'never' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

/** A horizontal bar chart of files by number of copies, as inline SVG (no script, no external asset). */
function copiesChart(h: { '1': number; '2': number; '3+': number }): string {
  const rows: [string, number, string][] = [
    ['1 copy', h['1'], '#c0392b'],
    ['2 copies', h['2'], '#e6a117'],
    ['3+ copies', h['3+'], '#2e8b57'],
  ];
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const bars = rows.map(([label, n, color], i) => {
    const w = Math.round((n / max) * 300);
    const y = i * 28;
    return `<text x="0" y="${y + 17}" font-size="13">${label}</text><rect x="80" y="${y + 4}" width="${w}" height="18" fill="${color}"></rect><text x="${86 + w}" y="${y + 17}" font-size="13">${n}</text>`;
  });
  return `<svg id="copies-chart" role="img" aria-label="files by number of copies" width="440" height="${rows.length * 28}" viewBox="0 0 440 ${rows.length * 28}" xmlns="http://www.w3.org/2000/svg">${bars.join('')}</svg>`;
}

/** What the page shows besides the index: the daemon's live counters. */
export interface StatusPageLive {
  cache: { bytes: number; maxBytes: number } | undefined;
  pins: Pins;
}

/**
 * The HTML of `GET /~vdfs/`: locations (online, size), cache use, pinned bytes, the upload
 * queue, peers with their last contact and the copies summary with its chart. Every value
 * carries an id or data-* attribute so tests (and scrapers) can read it back. Throws only
 * SQLite errors.
 */
/** The copies paragraph, histogram and chart. */
function copiesSection(c: NonNullable<StatusReport['copies']>): string {
  return `<p id="copies" data-min="${c.min}" data-files="${c.files}" data-under="${c.under.files}">${c.under.files} of ${c.files} files have fewer than ${c.min} copies (${formatSize(c.under.bytes)}).</p>
<table id="copies-histogram"><tr><th>copies</th><th>files</th></tr>
<tr><td>1</td><td id="copies-1">${c.histogram['1']}</td></tr><tr><td>2</td><td id="copies-2">${c.histogram['2']}</td></tr><tr><td>3+</td><td id="copies-3">${c.histogram['3+']}</td></tr></table>
${copiesChart(c.histogram)}`;
}

export function renderStatusPage(home: Home, live: StatusPageLive): string {
  const r = statusReport(home);
  const pins = live.pins.report();
  const peers = new PeerStore(home.db).list();
  const locRows = r.locations
    .map(
      (l) =>
        `<tr data-location="${esc(l.name)}"><td>${esc(l.name)}</td><td>${esc(l.kind)}</td><td class="${l.online ? 'on' : 'off'}" data-online="${l.online}">${l.online ? 'online' : 'offline'}</td>` +
        `<td data-files="${l.files}">${l.files}</td><td data-bytes="${l.bytes}">${formatSize(l.bytes)}</td></tr>`,
    )
    .join('');
  const peerRows =
    peers.map((p) => `<tr data-peer="${esc(p.name)}"><td>${esc(p.name)}</td><td data-last-contact="${p.lastSeen ?? ''}">${when(p.lastSeen)}</td></tr>`).join('') ||
    '<tr><td colspan="2">no paired peers</td></tr>';
  const c = r.copies;
  const cache = live.cache;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vdfs status: ${esc(r.node.name)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}
.on{color:#2e8b57}.off{color:#c0392b;font-weight:bold}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{color:#555}
</style></head>
<body>
<h1>vdfs on <span id="node-name">${esc(r.node.name)}</span></h1>
<h2>Locations</h2>
<table id="locations"><tr><th>name</th><th>kind</th><th>state</th><th>files</th><th>size</th></tr>${locRows}</table>
<h2>This device</h2>
<dl>
<dt>cache</dt><dd id="cache" data-bytes="${cache?.bytes ?? ''}" data-max="${cache?.maxBytes ?? home.config['cache.maxSize']}">${cache ? `${formatSize(cache.bytes)} of ${formatSize(cache.maxBytes)}` : 'unknown'}</dd>
<dt>pinned</dt><dd id="pinned" data-bytes="${pins.fetchedBytes}" data-wanted="${pins.bytes}" data-max="${pins.maxBytes}">${formatSize(pins.fetchedBytes)} of ${formatSize(pins.bytes)} here (${pins.pins.length} pin${pins.pins.length === 1 ? '' : 's'}, limit ${formatSize(pins.maxBytes)})</dd>
<dt>upload queue</dt><dd id="uploads" data-pending="${r.uploads.pending}" data-failed="${r.uploads.failed}">${r.uploads.pending} pending, ${r.uploads.failed} failed</dd>
</dl>
<h2>Peers</h2>
<table id="peers"><tr><th>peer</th><th>last contact</th></tr>${peerRows}</table>
<h2>Copies</h2>
${c ? copiesSection(c) : `<p id="copies" data-skipped="${r.copiesSkipped}">not counted for ${r.copiesSkipped} files: <code>vdfs copies</code> counts them.</p>`}
<p><small>generated ${when(Date.now())}</small></p>
</body></html>
`;
}
