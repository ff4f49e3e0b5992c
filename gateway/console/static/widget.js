// The embeddable chat widget: one script tag puts the chat on any page.
//
//   <script src="https://GATEWAY/widget.js" data-key="hw_..." data-agent="triage" async></script>
//
// Use a widget key (hivewire keys create --tenant T --widget): it may only hold conversations,
// since it sits in a public page. The page's origin must be allowed for the tenant
// (HIVEWIRE_GATEWAY_CORS_ORIGINS). The widget loads the console's modules from the gateway.
(function () {
  const script = document.currentScript;
  if (!script) return;
  const base = new URL(script.src).origin;
  const key = script.dataset.key;
  const agent = script.dataset.agent || "";
  const title = script.dataset.title || "Ask us anything";

  async function start() {
    const [{ Client, ApiError, newId }, { Follow }, { Transcript }, { el }] = await Promise.all([
      import(`${base}/console/static/api.js`),
      import(`${base}/console/static/sse.js`),
      import(`${base}/console/static/transcript.js`),
      import(`${base}/console/static/ui.js`),
    ]);
    const client = new Client({ base, key });
    const host = el("div", { id: "hivewire-widget" });
    const root = host.attachShadow({ mode: "open" });
    const messages = el("div", { class: "transcript", part: "transcript" });
    const text = el("textarea", { rows: 2, placeholder: "Type your question…", "aria-label": "Your question" });
    const error = el("p", { class: "error", role: "alert" });
    const state = el("span", { class: "connection" });
    const form = el("form", { class: "composer" }, [text, el("button", { type: "submit" }, "Send"), error]);
    const panel = el("section", { class: "panel", hidden: true }, [
      el("header", {}, [el("strong", {}, title), state, el("button", { class: "close", "aria-label": "Close" }, "×")]),
      messages,
      form,
    ]);
    const open = el("button", { class: "launcher", "aria-label": title }, "Chat");
    root.append(el("link", { rel: "stylesheet", href: `${base}/console/static/widget.css` }), panel, open);
    document.body.append(host);

    const remember = `hivewire.widget.${base}.${agent}`;
    let conversation = sessionStorage.getItem(remember);
    let follow = null;
    const transcript = new Transcript(messages, {
      sourceLink: (source) => (/^https?:\/\//.test(source) ? source : null),
    });
    const listen = () => {
      follow = new Follow(client, conversation, {
        onEvent: (event) => transcript.apply(event),
        onState: (s, status) => {
          state.textContent = s === "reconnecting" ? "reconnecting…" : "";
          if (s === "closed" && status === 404) {
            sessionStorage.removeItem(remember); // expired: the next question starts afresh
            conversation = null;
          }
        },
      });
    };
    if (conversation) listen();

    open.addEventListener("click", () => {
      panel.hidden = false;
      open.hidden = true;
      text.focus();
    });
    panel.querySelector(".close").addEventListener("click", () => {
      panel.hidden = true;
      open.hidden = false;
    });
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const question = text.value.trim();
      if (!question) return;
      text.value = "";
      error.textContent = "";
      try {
        if (!conversation) {
          conversation = (await client.post("/v1/conversations", agent ? { agent } : {})).id;
          sessionStorage.setItem(remember, conversation);
          listen();
        }
        await client.post(`/v1/conversations/${conversation}/messages`, { text: question, messageId: newId() });
      } catch (e) {
        // 409: the browser resent the message over a new connection; the first one counts.
        if (e instanceof ApiError && e.status !== 409) error.textContent = e.message;
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
