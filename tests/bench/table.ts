// The Markdown tables of the bench: printed without --json, and written by report.ts.
import type { BenchDoc } from './report-svg';

const fmt = (v: number | null) => (v === null ? 'n/a' : String(v));

export function machineLine(doc: BenchDoc): string {
  const m = doc.machine;
  const load = m.load as { min: number; median: number; max: number } | undefined;
  const busy = load ? `, load average ${load.min}–${load.max} (median ${load.median}) on ${m.cpus} cores during the run` : '';
  return `${m.os}, kernel ${m.kernel}, ${m.cpus}× ${m.cpu}, ${m.memGiB} GiB RAM, ${m.filesystem ?? m.disk}, node ${m.node}, ${m.rclone}, ${m.apache}; ${m.mode} run, ${m.reps} reps, ${m.date}, commit ${doc.commit.slice(0, 12)}${busy}`;
}

/** One row per figure: its cache state, durability, vdfs's median and every baseline's with its ratio. */
export function resultsTable(doc: BenchDoc): string[] {
  const lines = ['| figure | cache | unit | better | vdfs | baselines: median (ratio; > 1 means vdfs is better) |', '|---|---|---|---|---|---|'];
  for (const r of doc.results) {
    const bases = r.baselines.map((b) => `${b.name} ${fmt(b.value)}${b.ratio === null ? '' : ` (×${b.ratio})`}`).join('; ');
    const cache = r.cache === 'cold' && r.cacheDropped === false ? 'cold: NOT COLD, withheld' : r.cache;
    lines.push(`| ${r.name}${r.durability ? ` ¹` : ''} | ${cache} | ${r.unit} | ${r.better} | ${fmt(r.vdfs)} | ${bases || '—'} |`);
  }
  const dur = doc.results.filter((r) => r.durability);
  if (dur.length) lines.push('', `¹ durability: ${dur.map((r) => `${r.name}: ${r.durability}`).join('; ')}.`);
  return lines;
}

export function formatTable(doc: BenchDoc): string {
  const lines = [`machine: ${machineLine(doc)}`, '', ...resultsTable(doc), '', 'notes:'];
  for (const r of doc.results) if (r.note) lines.push(`- ${r.name}: ${r.note}`);
  for (const r of doc.results) for (const b of r.baselines) if (b.note) lines.push(`- ${r.name} / ${b.name}: ${b.note}`);
  return lines.join('\n');
}
