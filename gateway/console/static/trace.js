// A turn's trace as a waterfall: each hop (gateway, bus, agents, model, knowledge, Redis) and its time.

import { ApiError } from "./api.js";
import { el } from "./ui.js";

function tree(spans) {
  const byId = new Map(spans.map((s) => [s.spanId, { ...s, children: [] }]));
  const roots = [];
  for (const span of byId.values()) {
    const parent = span.parentId && byId.get(span.parentId);
    if (parent) parent.children.push(span);
    else roots.push(span);
  }
  const ordered = [];
  const walk = (span, depth) => {
    ordered.push({ span, depth });
    span.children.sort((a, b) => a.start - b.start).forEach((child) => walk(child, depth + 1));
  };
  roots.sort((a, b) => a.start - b.start).forEach((root) => walk(root, 0));
  return ordered;
}

function ms(nanoseconds) {
  const value = nanoseconds / 1e6;
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

export async function renderTrace(main, { client }, traceId) {
  let trace = null;
  // Spans reach the store within a second of ending: wait a little for a turn just finished.
  for (let attempt = 0; attempt < 8 && trace === null; attempt += 1) {
    try {
      trace = await client.get(`/v1/traces/${traceId}`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404) || attempt === 7) throw e;
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
  }
  const start = Math.min(...trace.spans.map((s) => s.start));
  const end = Math.max(...trace.spans.map((s) => s.end));
  const total = Math.max(1, end - start);
  const rows = tree(trace.spans).map(({ span, depth }) => {
    const offset = ((span.start - start) / total) * 100;
    const width = Math.max(0.3, ((span.end - span.start) / total) * 100);
    const attributes = Object.entries(span.attributes).map(([k, v]) => el("div", {}, [el("code", {}, k), " ", String(v)]));
    return el("details", { class: `span ${span.status === "error" ? "error" : ""}`, "data-service": span.service }, [
      el("summary", {}, [
        el("span", { class: "span-name", style: `padding-left:${depth * 14}px` }, [el("span", { class: "service" }, span.service.replace("hivewire-", "")), " ", span.name]),
        el("span", { class: "span-track" }, el("span", { class: `span-bar kind-${span.kind}`, style: `left:${offset}%;width:${width}%` })),
        el("span", { class: "span-time" }, ms(span.end - span.start)),
      ]),
      el("div", { class: "span-attributes" }, [span.statusMessage ? el("p", { class: "error" }, span.statusMessage) : "", ...attributes]),
    ]);
  });
  const services = [...new Set(trace.spans.map((s) => s.service))];
  main.replaceChildren(
    el("section", { class: "trace", id: "trace" }, [
      el("h1", {}, "Trace of a turn"),
      el("p", { class: "meta" }, [el("code", {}, traceId), ` · ${trace.spans.length} spans · ${services.length} processes · ${ms(total)}`]),
      el("div", { class: "waterfall" }, rows),
    ]),
  );
}
