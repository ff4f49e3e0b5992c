// A conversation drawn from its events: the questions, the statuses of each turn, the answer as its
// tokens arrive, its citations as links, and a person's replies.

import { el } from "./ui.js";

const DESK = "hivewire.desk";
const TRACE = "hivewire.trace";
const HUMAN = "hivewire.human";
// A turn run again after the replica running it stopped: what it streamed before is void.
const RESTART = "hivewire.restart";

function textOf(message) {
  return (message?.parts || []).map((part) => part.text || "").join("");
}

// Text with each citation [n] as a link to the n-th source.
function cited(text, citations, sourceLink) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const source = citations[Number(match[1]) - 1];
    if (!source) continue;
    nodes.push(document.createTextNode(text.slice(at, match.index)));
    nodes.push(el("a", { class: "citation", href: sourceLink(source), title: source, target: "_blank" }, match[0]));
    at = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

export class Transcript {
  // container: where to draw; sourceLink(source) and traceLink(traceId): hrefs (traceLink may return null).
  constructor(container, { sourceLink, traceLink = () => null, onTurnEnd = () => {} }) {
    this.container = container;
    this.sourceLink = sourceLink;
    this.traceLink = traceLink;
    this.onTurnEnd = onTurnEnd;
    this.turn = null;
  }

  apply({ event, data }) {
    if (event === "message" && data.message) this.message(data.message);
    else if (event === "artifact") this.tokens(data.artifactUpdate);
    else if (event === "status") this.status(data.statusUpdate);
    this.container.scrollTop = this.container.scrollHeight;
  }

  message(message) {
    if (message.role === "ROLE_USER") {
      this.container.append(el("div", { class: "bubble user" }, textOf(message)));
      this.turn = null;
      return;
    }
    const human = message.metadata?.[HUMAN];
    const bubble = el("div", { class: `bubble agent${human ? " person" : ""}` }, [
      el("div", { class: "who" }, human ? `${human.author} (a person)` : "agent"),
      el("div", { class: "text" }, textOf(message)),
    ]);
    this.container.append(bubble);
  }

  current() {
    if (this.turn === null) {
      const text = el("div", { class: "text" });
      const notes = el("ul", { class: "status-notes" });
      const bubble = el("div", { class: "bubble agent turn", "data-streamed": "" }, [notes, text]);
      this.container.append(bubble);
      this.turn = { bubble, text, notes, streamed: "" };
    }
    return this.turn;
  }

  tokens(update) {
    const turn = this.current();
    for (const part of update.artifact.parts) {
      if (typeof part.text !== "string") continue;
      turn.streamed += part.text;
    }
    turn.bubble.dataset.streamed = turn.streamed;
    turn.text.textContent = turn.streamed;
  }

  status(update) {
    const { state, message } = update.status;
    const turn = this.current();
    if (state === "TASK_STATE_WORKING") {
      if (message?.metadata?.[RESTART]) {
        turn.streamed = "";
        turn.bubble.dataset.streamed = "";
        turn.text.textContent = "";
      }
      const note = textOf(message);
      if (note) turn.notes.append(el("li", { class: "status-note" }, note));
      turn.bubble.classList.add("working");
      return;
    }
    turn.bubble.classList.remove("working");
    turn.bubble.dataset.state = state;
    if (state === "TASK_STATE_COMPLETED") this.complete(turn, message || {});
    else if (state === "TASK_STATE_FAILED") {
      const problem = message?.metadata?.problem || {};
      turn.text.textContent = `${problem.title || "The turn failed"}${problem.detail ? ": " + problem.detail : ""}`;
      turn.bubble.classList.add("failed");
      this.traced(turn, message?.metadata?.[TRACE]);
    } else if (state === "TASK_STATE_CANCELED" || state === "TASK_STATE_REJECTED") {
      turn.notes.append(el("li", { class: "status-note" }, state.replace("TASK_STATE_", "").toLowerCase()));
    } else {
      return;
    }
    this.turn = null;
    this.onTurnEnd(update);
  }

  complete(turn, message) {
    const final = textOf(message);
    const desk = message.metadata?.[DESK];
    const citations = desk?.citations?.length ? desk.citations : desk?.sources || [];
    // What the reply adds after the streamed tokens (a hand-off note), or all of it if nothing streamed.
    const text = final.startsWith(turn.streamed) ? final : final || turn.streamed;
    turn.text.replaceChildren(...cited(text, citations, this.sourceLink));
    if (desk?.sources?.length) {
      turn.bubble.append(
        el("div", { class: "sources" }, [
          "Sources: ",
          ...desk.sources.flatMap((source, i) => [
            i ? ", " : "",
            el("a", { class: "source", href: this.sourceLink(source), target: "_blank" }, source),
          ]),
        ]),
      );
    }
    if (desk) {
      const flags = [`intent ${desk.intent}`, `sentiment ${desk.sentiment}`];
      if (desk.handoff) flags.push("handed to a person");
      turn.bubble.append(el("div", { class: "desk" + (desk.handoff ? " handoff" : "") }, flags.join(" · ")));
    }
    this.traced(turn, message.metadata?.[TRACE]);
  }

  traced(turn, traceId) {
    const href = traceId ? this.traceLink(traceId) : null;
    if (href) turn.bubble.append(el("a", { class: "trace-link", href }, "trace of this turn"));
  }
}
