#!/usr/bin/env node
// Checks the import structure of src/ against the layering in the
// architecture doc: no import cycles anywhere, and the rules below.
// Usage: node scripts/check-imports.mjs [root]   (root holds src/; default: this repo)
// Exit 1 with one line per offence when anything breaks them.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCycles } from './cycles.mjs';
import { importGraph } from './import-graph.mjs';

// The layering rules, one row each. Paths are relative to src/; a trailing '/'
// is a folder. `forbid`: files under `from` may not import these. `only`: the
// sole src/ files (or folders) they may import. Type-only imports count: they
// couple too.
const RULES = [
  { from: ['log/'], forbid: ['store/'], why: 'the store owns logs; a log is handed what it needs' },
  { from: ['native.ts', 'addon/'], only: ['errors.ts', 'validate.ts', 'addon/'], why: 'the doorway to the addon depends on nothing above it' },
  { from: ['segment/'], forbid: ['log/', 'store/', 'cache/'], why: 'segments sit under the log and are blind to caching' },
  { from: ['index/'], forbid: ['segment/', 'log/', 'store/', 'cache/'], why: 'indexes know only files' },
  { from: ['cache/'], forbid: ['log/', 'store/'], why: 'the cache is told about segments, it does not reach up' },
  { from: ['common/', 'sendfile/'], forbid: ['log/', 'store/', 'cache/', 'segment/', 'index/'], why: 'shared helpers and transfers know nothing of logs' },
  { from: ['layout.ts'], only: [], why: 'the on-disk names are plain data' },
];

/** Every offence in `root`/src, one line each. */
function checkImports(root) {
  const graph = importGraph(join(root, 'src'));
  const problems = findCycles(graph).map(describeCycle);
  for (const [file, targets] of graph) {
    for (const rule of RULES.filter((r) => r.from.some((f) => under(file, f)))) {
      for (const target of targets) if (breaks(rule, target)) problems.push(`${file} imports ${target}: ${ruleText(rule)}`);
    }
  }
  return problems;
}

function under(file, prefix) {
  return prefix.endsWith('/') ? file.startsWith(prefix) : file === prefix;
}

function breaks(rule, target) {
  if (rule.only) return !rule.only.some((allowed) => under(target, allowed));
  return rule.forbid.some((f) => under(target, f));
}

function ruleText(rule) {
  const what = rule.only ? `may import only ${rule.only.join(', ')}` : `may not import ${rule.forbid.join(', ')}`;
  return `${rule.from.join(', ')} ${what} (${rule.why})`;
}

function describeCycle({ loop, members }) {
  const rest = members.filter((m) => !loop.includes(m));
  return `cycle: ${loop.join(' -> ')}${rest.length > 0 ? ` (same cycle group: ${rest.join(', ')})` : ''}`;
}

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const problems = checkImports(root);
if (problems.length > 0) {
  console.error(`check-imports: ${problems.length} problem(s) in ${join(root, 'src')}`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`check-imports: ${join(root, 'src')} is layered as the rules say`);
