// The readable (Markdown) table printed without --json.
import type { Result } from './lib';

const fmt = (v: number | null) => (v === null ? 'n/a' : String(v));

export function formatTable(machine: Record<string, unknown>, results: Result[]): string {
  const lines = [
    `machine: ${machine.os}, kernel ${machine.kernel}, ${machine.cpus}× ${machine.cpu}, ${machine.memGiB} GiB RAM, node ${machine.node}, ${machine.mode} mode, ${machine.reps} reps`,
    '',
    '| figure | unit | better | vdfs | baselines: value (ratio; > 1 means vdfs is better) |',
    '|---|---|---|---|---|',
  ];
  for (const r of results) {
    const bases = r.baselines.map((b) => `${b.name} ${fmt(b.value)}${b.ratio === null ? '' : ` (×${b.ratio})`}`).join('; ');
    lines.push(`| ${r.name} | ${r.unit} | ${r.better} | ${fmt(r.vdfs)} | ${bases} |`);
  }
  lines.push('', 'notes:');
  for (const r of results) if (r.note) lines.push(`- ${r.name}: ${r.note}`);
  for (const r of results) for (const b of r.baselines) if (b.note && r.vdfs !== null) lines.push(`- ${r.name} / ${b.name}: ${b.note}`);
  return lines.join('\n');
}
