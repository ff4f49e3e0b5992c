// A bar chart of usage per hour, as SVG drawn here (no charting library).

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// hours: [{hour, requests, inputTokens, outputTokens, cost}], oldest first.
export function usageChart(hours) {
  const width = 960, height = 220, left = 48, bottom = 28, top = 10;
  const tokens = hours.map((h) => h.inputTokens + h.outputTokens);
  const series = [
    { name: "requests", values: hours.map((h) => h.requests), class: "bar-requests" },
    { name: "tokens", values: tokens, class: "bar-tokens" },
  ];
  const figure = document.createElement("figure");
  figure.className = "chart";
  for (const { name, values, class: kind } of series) {
    const max = Math.max(1, ...values);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${name} per hour`, class: "usage-chart", "data-series": name });
    const step = (width - left) / values.length;
    chart.append(svg("text", { x: 0, y: top + 8, class: "axis" }, max.toLocaleString()));
    chart.append(svg("text", { x: 0, y: height - bottom, class: "axis" }, "0"));
    chart.append(svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis-line" }));
    values.forEach((value, i) => {
      const h = ((height - bottom - top) * value) / max;
      const bar = svg("rect", { x: left + i * step + 1, y: height - bottom - h, width: Math.max(1, step - 2), height: h, class: kind });
      bar.append(svg("title", {}, `${hours[i].hour}: ${value.toLocaleString()} ${name}`));
      chart.append(bar);
      if (i % 6 === 0) {
        const label = new Date(hours[i].hour).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        chart.append(svg("text", { x: left + i * step, y: height - 8, class: "axis" }, label));
      }
    });
    const caption = document.createElement("figcaption");
    caption.textContent = `${name} per hour (UTC hours, your local time)`;
    figure.append(caption, chart);
  }
  return figure;
}
