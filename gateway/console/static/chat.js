// Chat: the tenant's conversations, and one of them followed live as its answers stream in.

import { ApiError, newId, query } from "./api.js";
import { Follow } from "./sse.js";
import { Transcript } from "./transcript.js";
import { ago, el } from "./ui.js";

export function sourceLink(source) {
  return /^https?:\/\//.test(source) ? source : `#/desk/knowledge?source=${encodeURIComponent(source)}`;
}

export function traceLink(traceId) {
  return `#/trace/${traceId}`;
}

// A conversation's transcript, followed live; returns the follower (close it when leaving).
export function followConversation(client, conversationId, container, status, onQuestion = () => {}) {
  const transcript = new Transcript(container, { sourceLink, traceLink });
  return new Follow(client, conversationId, {
    onEvent: (event) => {
      transcript.apply(event);
      const message = event.data.message;
      if (message?.role === "ROLE_USER") onQuestion((message.parts || []).map((p) => p.text || "").join(""));
    },
    onState: (state) => {
      status.textContent = state === "live" ? "live" : state === "reconnecting" ? "reconnecting…" : "";
      status.dataset.state = state;
    },
  });
}

async function conversationList(client, list, more, cursor) {
  const page = await client.get("/v1/conversations" + query({ limit: 20, cursor }));
  for (const conversation of page.items) {
    list.append(
      el("li", {}, el("a", { href: `#/chat/${conversation.id}`, "data-id": conversation.id }, [
        el("span", { class: "title" }, conversation.title || "(no message yet)"),
        el("span", { class: "meta" }, `${conversation.agent} · ${ago(conversation.updatedAt || conversation.createdAt)}`),
      ])),
    );
  }
  more.hidden = !page.nextCursor;
  more.onclick = () => conversationList(client, list, more, page.nextCursor);
}

export async function renderChat(main, { client, onLeave }, conversationId) {
  const agents = (await client.get("/v1/agents")).filter((agent) => agent.skills.includes("chat"));
  const picker = el("select", { id: "agent" }, agents.map((a) => el("option", { value: a.name }, `${a.name} ${a.version}`)));
  const start = el("button", { id: "new-conversation", disabled: !agents.length }, "New conversation");
  start.addEventListener("click", async () => {
    const made = await client.post("/v1/conversations", { agent: picker.value, skill: "chat" });
    location.hash = `#/chat/${made.id}`;
  });
  const list = el("ul", { id: "conversations", class: "list" });
  const more = el("button", { class: "link", hidden: true }, "More");
  const side = el("aside", { class: "side" }, [
    el("div", { class: "row" }, [picker, start]),
    agents.length ? "" : el("p", { class: "empty" }, "No live agent has a chat skill."),
    list,
    more,
  ]);
  await conversationList(client, list, more);
  if (!conversationId) {
    main.replaceChildren(el("div", { class: "split" }, [side, el("section", { class: "chat empty" }, "Pick a conversation or start one.")]));
    return;
  }
  list.querySelector(`[data-id="${conversationId}"]`)?.classList.add("active");
  const conversation = await client.get(`/v1/conversations/${conversationId}`);
  const status = el("span", { id: "connection", class: "connection" });
  const messages = el("div", { id: "transcript", class: "transcript" });
  const text = el("textarea", { id: "message", rows: 2, placeholder: "Ask something…", required: true });
  const error = el("p", { class: "error", role: "alert" });
  const form = el("form", { id: "composer", class: "composer" }, [text, el("button", { type: "submit" }, "Send"), error]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = text.value.trim();
    if (!question) return;
    text.value = "";
    error.textContent = "";
    try {
      // The answer arrives through the conversation's events, followed above; this call
      // returns when the turn ends. A dropped connection does not stop the turn.
      await client.post(`/v1/conversations/${conversationId}/messages`, { text: question, messageId: newId() });
    } catch (e) {
      // 409: the browser resent the message over a new connection; the first one counts.
        if (e instanceof ApiError && e.status !== 409) error.textContent = e.message;
    }
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  const heading = el("h2", {}, conversation.title || "New conversation");
  // The first question names the conversation (as the gateway records it).
  const named = (question) => {
    if (conversation.title) return;
    conversation.title = question.split(/\s+/).join(" ").slice(0, 80);
    heading.textContent = conversation.title;
    const item = list.querySelector(`[data-id="${conversationId}"] .title`);
    if (item) item.textContent = conversation.title;
  };
  const follow = followConversation(client, conversationId, messages, status, named);
  onLeave(() => follow.close());
  main.replaceChildren(
    el("div", { class: "split" }, [
      side,
      el("section", { class: "chat" }, [
        el("div", { class: "chat-head" }, [heading, el("span", { class: "meta" }, `with ${conversation.agent}`), status]),
        messages,
        form,
      ]),
    ]),
  );
  text.focus();
}
