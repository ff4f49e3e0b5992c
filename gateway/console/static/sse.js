// A conversation's events as Server-Sent Events over fetch (EventSource cannot send the API key),
// followed for as long as the page wants them, and resumed after a dropped connection from the
// last event id seen: the gateway replays exactly what was missed, so nothing is lost or repeated.

async function* frames(response, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const frame = { id: null, event: "message", data: "" };
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") frame.id = value;
          else if (field === "event") frame.event = value;
          else if (field === "data") frame.data += value;
        }
        if (frame.data) yield frame;
      }
      if (signal.aborted) return;
    }
  } finally {
    reader.releaseLock();
  }
}

export class Follow {
  // Follows /v1/conversations/{id}/events from after `after` (0: the start), calling
  // onEvent({id, event, data}) in order, onState("live" | "reconnecting" | "closed").
  constructor(client, conversationId, { after = 0, onEvent, onState = () => {} }) {
    this.client = client;
    this.conversationId = conversationId;
    this.lastId = String(after);
    this.onEvent = onEvent;
    this.onState = onState;
    this.controller = new AbortController();
    this.attempt = 0;
    this.done = this.run();
  }

  async run() {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      try {
        const response = await fetch(
          `${this.client.base}/v1/conversations/${this.conversationId}/events?follow=true`,
          {
            headers: this.client.headers({ Accept: "text/event-stream", "Last-Event-ID": this.lastId }),
            signal,
            cache: "no-store",
          },
        );
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          this.onState("closed", response.status);
          return;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        this.onState("live");
        this.attempt = 0;
        for await (const frame of frames(response, signal)) {
          if (frame.id !== null) this.lastId = frame.id;
          this.onEvent({ id: frame.id, event: frame.event, data: JSON.parse(frame.data) });
        }
      } catch (error) {
        if (signal.aborted) break;
      }
      if (signal.aborted) break;
      // The connection dropped: come back from the last id seen, sooner at first.
      this.onState("reconnecting");
      this.attempt += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 200 * 2 ** (this.attempt - 1))));
    }
    this.onState("closed");
  }

  close() {
    this.controller.abort();
  }
}
