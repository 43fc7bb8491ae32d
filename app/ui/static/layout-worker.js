// Lays out the execution page's graph with dagre off the main thread, so a big graph never
// freezes the page: it receives {nodes, edges} and answers with positions and edge points.
"use strict";
importScripts("/ui/static/vendor/dagre-3.1.3.min.js");

self.onmessage = (message) => {
  const data = message.data;
  const g = new dagre.graphlib.Graph();
  // longest-path ranking: several times faster than network-simplex on big graphs.
  const ranker = data.nodes.length > 80 ? "longest-path" : "network-simplex";
  g.setGraph({ rankdir: "LR", nodesep: 16, ranksep: 40, marginx: 12, marginy: 12, ranker });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of data.nodes) {
    const chars = Math.max(n.id.length, n.type.length + 12);
    g.setNode(n.id, { width: Math.max(100, 7.2 * chars + 20), height: 40 });
  }
  for (const [from, to] of data.edges) if (g.hasNode(from) && g.hasNode(to)) g.setEdge(from, to);
  dagre.layout(g);
  self.postMessage({
    width: g.graph().width,
    height: g.graph().height,
    nodes: g.nodes().map((id) => ({ id, ...g.node(id) })),
    edges: g.edges().map((e) => g.edge(e).points),
  });
};
