// Who imports whom inside one src/ tree: every import, export-from, import()
// and import type, read by TypeScript's own pre-parser (comments and strings
// are not mistaken for imports). Paths are relative to src/, '/'-separated.
import { readdirSync, readFileSync } from 'node:fs';
import { posix, relative, sep, join } from 'node:path';
import ts from 'typescript';

const SOURCE = /\.[mc]?ts$/;

/** Map from each source file to the source files it imports. */
export function importGraph(srcDir) {
  const files = listSources(srcDir);
  const known = new Set(files);
  const graph = new Map();
  for (const file of files) {
    const text = readFileSync(join(srcDir, file), 'utf8');
    const targets = new Set();
    for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
      const target = resolve(file, fileName, known);
      if (target !== undefined) targets.add(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

function listSources(srcDir) {
  return readdirSync(srcDir, { recursive: true })
    .map((p) => relative(srcDir, join(srcDir, p)).split(sep).join('/'))
    .filter((p) => SOURCE.test(p) && !p.endsWith('.d.ts'))
    .sort();
}

// NodeNext specifiers name the emitted file ('./x.js'); the source is './x.ts'.
// Packages, node: builtins and paths that leave src/ are not part of the graph.
function resolve(from, specifier, known) {
  if (!specifier.startsWith('.')) return undefined;
  const path = posix.normalize(posix.join(posix.dirname(from), specifier));
  const source = path.replace(/\.([mc]?)js$/, '.$1ts');
  if (known.has(source)) return source;
  return known.has(path) ? path : undefined;
}
