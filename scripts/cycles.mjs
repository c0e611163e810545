// Import cycles in a graph (Map<file, Set<file>>): one strongly connected
// component per cycle group (Tarjan), each shown as one concrete loop.

/** Each entry: `loop` (a path that returns to its start) and `members` (the whole group). */
export function findCycles(graph) {
  return components(graph)
    .filter((c) => c.length > 1 || graph.get(c[0]).has(c[0]))
    .map((c) => c.sort())
    .map((members) => ({ loop: shortestLoop(graph, members), members }));
}

function components(graph) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  const visit = (v) => {
    index.set(v, index.size);
    low.set(v, index.get(v));
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    found.push(component);
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

// Breadth-first from the group's first file back to itself, inside the group.
function shortestLoop(graph, members) {
  const inGroup = new Set(members);
  const start = members[0];
  const cameFrom = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v)) {
      if (w === start) return [...pathTo(v, cameFrom, start), start];
      if (inGroup.has(w) && !cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

function pathTo(v, cameFrom, start) {
  const path = [v];
  while (path[0] !== start) path.unshift(cameFrom.get(path[0]));
  return path;
}
