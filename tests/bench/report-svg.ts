// The bench's picture, drawn by hand (no dependency): every figure's ratio to every baseline,
// on a log scale with 1x marked. Used by `npm run bench -- --svg FILE` and by report.ts.
import type { Result } from './lib';

/** The published JSON document. */
export interface BenchDoc {
  commit: string;
  machine: Record<string, unknown>;
  results: Result[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function renderSvg(doc: BenchDoc): string {
  const rows: Array<{ fig: string; cache: string; base: string; ratio: number | null }> = [];
  for (const r of doc.results) {
    const bases = r.baselines.length ? r.baselines : [{ name: '(no baseline)', ratio: null }];
    bases.forEach((b, i) => rows.push({ fig: i === 0 ? r.name : '', cache: i === 0 ? r.cache : '', base: b.name, ratio: b.ratio }));
  }
  const ratios = rows.map((r) => r.ratio).filter((x): x is number => x !== null && x > 0);
  const lo = Math.min(-1, Math.floor(Math.log10(Math.min(...ratios, 1))));
  const hi = Math.max(1, Math.ceil(Math.log10(Math.max(...ratios, 1))));
  const [left, plot, rowH, top] = [330, 520, 16, 58];
  const width = left + plot + 70;
  const height = top + rows.length * rowH + 30;
  const x = (v: number) => left + ((Math.log10(v) - lo) / (hi - lo)) * plot;
  const m = doc.machine;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">vdfs against each baseline: ratio, log scale (&gt; 1: vdfs is better)</text>`,
    `<text x="10" y="34">${esc(`${m.mode ?? ''} run, ${m.date ?? ''}, commit ${doc.commit.slice(0, 12)}, ${m.cpus ?? '?'}x ${m.cpu ?? '?'}, kernel ${m.kernel ?? '?'}`)}</text>`,
  ];
  for (let p = lo; p <= hi; p++) {
    const v = 10 ** p;
    out.push(
      `<line x1="${x(v).toFixed(1)}" y1="${top - 6}" x2="${x(v).toFixed(1)}" y2="${height - 24}" stroke="${p === 0 ? 'black' : '#ccc'}" stroke-width="${p === 0 ? 1.5 : 1}"/>`,
    );
    out.push(`<text x="${x(v).toFixed(1)}" y="${top - 10}" text-anchor="middle">${p === 0 ? '1× (equal)' : `${v}×`}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    if (r.fig) {
      out.push(`<line x1="10" y1="${y}" x2="${width - 10}" y2="${y}" stroke="#eee"/>`);
      out.push(`<text x="10" y="${y + 12}" font-weight="bold">${esc(r.fig)}</text><text x="205" y="${y + 12}" fill="#555">${esc(r.cache)}</text>`);
    }
    out.push(`<text x="${left - 8}" y="${y + 12}" text-anchor="end">${esc(r.base)}</text>`);
    if (r.ratio === null || r.ratio <= 0) {
      out.push(`<text x="${x(1) + 6}" y="${y + 12}" fill="#999">n/a</text>`);
      return;
    }
    const [a, b] = [Math.min(x(1), x(r.ratio)), Math.max(x(1), x(r.ratio))];
    out.push(`<rect x="${a.toFixed(1)}" y="${y + 3}" width="${Math.max(1, b - a).toFixed(1)}" height="${rowH - 6}" fill="${r.ratio >= 1 ? '#2a9d4b' : '#d1495b'}"/>`);
    out.push(`<text x="${(r.ratio >= 1 ? b + 4 : a - 4).toFixed(1)}" y="${y + 12}" text-anchor="${r.ratio >= 1 ? 'start' : 'end'}">×${r.ratio}</text>`);
  });
  out.push(
    `<text x="10" y="${height - 8}" fill="#555">green: vdfs better, red: baseline better; "cache" is the state of the kernel caches before each sample</text>`,
    '</svg>',
    '',
  );
  return out.join('\n');
}
