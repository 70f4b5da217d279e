// Bundle-size check: the whole app's JavaScript, gzipped, must stay within the budget.
// Run after `npm run build`. Exits 1 above the budget (or when there is no build).
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const BUDGET = 150 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const assets = join(root, 'dist', 'assets');
if (!existsSync(join(root, 'dist', 'index.html')) || !existsSync(assets)) {
  console.error('size: no build found in dist/; run `npm run build` first');
  process.exit(1);
}
const files = readdirSync(assets).filter((f) => f.endsWith('.js'));
if (files.length === 0) {
  console.error('size: no JavaScript in dist/assets');
  process.exit(1);
}
const gz = (buf) => gzipSync(buf, { level: 9 }).length;
let total = 0;
let raw = 0;
const rows = files
  .map((f) => {
    const buf = readFileSync(join(assets, f));
    const g = gz(buf);
    total += g;
    raw += buf.length;
    return { f, raw: buf.length, g };
  })
  .sort((a, b) => b.g - a.g);
// What the first page load fetches: the entry script and its static imports (modulepreload).
const html = readFileSync(join(root, 'dist', 'index.html'), 'utf8');
const initial = [...html.matchAll(/(?:src|href)="\/assets\/([^"]+\.js)"/g)].map((m) => m[1]);
const initialGz = rows.filter((r) => initial.includes(r.f)).reduce((a, r) => a + r.g, 0);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
for (const r of rows) console.log(`${kb(r.g).padStart(9)}  ${r.f}`);
console.log(`JavaScript: ${files.length} files, ${kb(raw)} raw, ${kb(total)} gzipped (budget ${kb(BUDGET)}); first load ${kb(initialGz)} gzipped`);
if (total > BUDGET) {
  console.error(`size: over budget by ${kb(total - BUDGET)}`);
  process.exit(1);
}
console.log('size: within budget');
