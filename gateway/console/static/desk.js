// The desk's dashboard: hand-offs, live agents, tasks, dead letters, usage and knowledge.

import { ApiError, query } from "./api.js";
import { followConversation } from "./chat.js";
import { ago, el, notice, table, when } from "./ui.js";
import { usageChart } from "./chart.js";

const PAGES = {
  handoffs: handoffs,
  agents: agents,
  tasks: tasks,
  "dead-letters": deadLetters,
  usage: usage,
  knowledge: knowledge,
};

export async function renderDesk(main, context, page, id) {
  const render = PAGES[page];
  if (!render) throw new Error(`no page ${page}`);
  const body = el("section", { class: "desk-page", id: `page-${page}` });
  main.replaceChildren(body);
  await render(body, context, id);
}

async function handoffs(body, context, conversationId) {
  if (conversationId) return handoff(body, context, conversationId);
  const status = context.params.get("status") || "open";
  const found = await context.client.get("/v1/handoffs" + query({ status }));
  body.replaceChildren(
    el("h1", {}, "Hand-off queue"),
    el("p", { class: "tabs" }, ["open", "handled", "all"].map((s) =>
      el("a", { href: `#/desk/handoffs?status=${s}`, class: s === status ? "active" : "" }, s))),
    table(
      ["flagged", "question", "reason", "status", ""],
      found.map((item) => [
        ago(item.handoff.at),
        item.handoff.question,
        item.handoff.reason,
        item.handoff.status === "handled" ? `answered by ${item.handoff.handledBy}` : "open",
        el("a", { href: `#/desk/handoffs/${item.conversationId}`, class: "button open-handoff" }, "Open"),
      ]),
      { empty: status === "open" ? "No conversation is waiting for a person." : "None." },
    ),
  );
}

async function handoff(body, { client, onLeave }, conversationId) {
  const conversation = await client.get(`/v1/conversations/${conversationId}`);
  const messages = el("div", { id: "transcript", class: "transcript" });
  const status = el("span", { id: "connection", class: "connection" });
  const author = el("input", { id: "author", value: localStorage.getItem("hivewire.author") || "support", required: true, maxlength: 64 });
  const text = el("textarea", { id: "reply", rows: 3, placeholder: "Answer as the agent…", required: true });
  const done = el("p", { class: "done", role: "status" });
  const form = el("form", { id: "reply-form", class: "composer" }, [
    el("label", {}, ["Your name", author]),
    text,
    el("button", { type: "submit" }, "Send as the agent"),
    done,
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    localStorage.setItem("hivewire.author", author.value.trim());
    try {
      await client.post(`/v1/conversations/${conversationId}/replies`, { text: text.value, author: author.value.trim() });
      text.value = "";
      done.textContent = "Sent; the hand-off is marked handled.";
    } catch (e) {
      done.textContent = e.message;
    }
  });
  const follow = followConversation(client, conversationId, messages, status);
  onLeave(() => follow.close());
  body.replaceChildren(
    el("p", {}, el("a", { href: "#/desk/handoffs" }, "← Hand-off queue")),
    el("div", { class: "chat-head" }, [el("h1", {}, conversation.title || conversationId), el("span", { class: "meta" }, `with ${conversation.agent}`), status]),
    messages,
    form,
  );
}

async function agents(body, { client }) {
  const live = await client.get("/v1/agents");
  body.replaceChildren(
    el("h1", {}, "Live agents"),
    table(
      ["agent", "version", "replicas", "in flight", "skills", "description"],
      live.map((a) => [el("strong", {}, a.name), a.version, String(a.replicas), String(a.inFlight), a.skills.join(", "), a.description]),
      { empty: "No agent is running." },
    ),
  );
}

const STATES = ["", "submitted", "working", "completed", "failed", "canceled"];

async function tasks(body, context) {
  const { client, params } = context;
  const state = el("select", { name: "state" }, STATES.map((s) => el("option", { value: s, selected: s === (params.get("state") || "") }, s || "any state")));
  const agent = el("input", { name: "agent", placeholder: "agent", value: params.get("agent") || "" });
  const contextId = el("input", { name: "contextId", placeholder: "conversation id", value: params.get("contextId") || "" });
  const filters = el("form", { class: "row filters" }, [state, agent, contextId, el("button", { type: "submit" }, "Filter")]);
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "#/desk/tasks" + query({ state: state.value, agent: agent.value.trim(), contextId: contextId.value.trim() });
  });
  const rows = el("div");
  const more = el("button", { class: "link", hidden: true }, "More");
  body.replaceChildren(el("h1", {}, "Durable tasks"), filters, rows, more);
  const items = [];
  async function load(cursor) {
    const page = await client.get("/v1/tasks" + query({ state: params.get("state"), agent: params.get("agent"), contextId: params.get("contextId"), limit: 50, cursor }));
    items.push(...page.items);
    rows.replaceChildren(
      table(
        ["task", "agent.skill", "state", "changed", ""],
        items.map((task) => {
          const stateName = task.status.state.replace("TASK_STATE_", "").toLowerCase();
          const terminal = ["completed", "failed", "canceled", "rejected"].includes(stateName);
          const cancel = el("button", { class: "cancel", "data-task": task.id }, "Cancel");
          cancel.addEventListener("click", async () => {
            try {
              await client.post(`/v1/tasks/${task.id}/cancel`);
              await tasks(body, context);
            } catch (e) {
              notice(rows, e);
            }
          });
          return [
            el("code", { title: task.id }, task.id.slice(0, 12)),
            `${task.metadata?.agent || "?"}.${task.metadata?.skill || "?"}`,
            el("span", { class: `state ${stateName}` }, stateName),
            task.status.timestamp ? new Date(task.status.timestamp).toLocaleString() : "",
            terminal ? "" : cancel,
          ];
        }),
        { empty: "No task matches." },
      ),
    );
    more.hidden = !page.nextCursor;
    more.onclick = () => load(page.nextCursor);
  }
  await load();
}

async function deadLetters(body, context) {
  const { client } = context;
  const page = await client.get("/v1/dead-letters" + query({ limit: 100 }));
  const done = el("p", { class: "done", role: "status", id: "replayed" });
  body.replaceChildren(
    el("h1", {}, "Dead letters"),
    done,
    table(
      ["#", "agent.skill", "task", "reason", "deliveries", "failed", ""],
      page.items.map((letter) => {
        const replay = el("button", { class: "replay", "data-seq": letter.seq, disabled: !letter.replayable }, "Replay");
        replay.addEventListener("click", async () => {
          try {
            const replayed = await client.post(`/v1/dead-letters/${letter.seq}/replay`);
            await deadLetters(body, context);
            body.querySelector("#replayed").textContent = `Replayed #${replayed.seq}: task ${replayed.task.id.slice(0, 12)} is queued again.`;
          } catch (e) {
            done.textContent = e.message;
          }
        });
        return [
          String(letter.seq),
          `${letter.agent}.${letter.skill || "?"}`,
          letter.taskId ? el("code", { title: letter.taskId }, letter.taskId.slice(0, 12)) : "(malformed)",
          letter.reason,
          String(letter.deliveries),
          when(letter.failedAt),
          replay,
        ];
      }),
      { empty: "No dead letters." },
    ),
  );
}

async function usage(body, { client }) {
  const [totals, history] = await Promise.all([client.get("/v1/usage"), client.get("/v1/usage/history?hours=48")]);
  const budget = totals.dailyTokenBudget ? `${totals.tokensToday.toLocaleString()} of ${totals.dailyTokenBudget.toLocaleString()}` : `${totals.tokensToday.toLocaleString()} (no budget)`;
  const card = (label, value) => el("div", { class: "stat" }, [el("span", { class: "label" }, label), el("span", { class: "value" }, value)]);
  body.replaceChildren(
    el("h1", {}, `Usage of ${totals.tenant}`),
    el("div", { class: "stats" }, [
      card("requests", totals.requests.toLocaleString()),
      card("input tokens", totals.inputTokens.toLocaleString()),
      card("output tokens", totals.outputTokens.toLocaleString()),
      card("cost", `$${totals.cost.toFixed(4)}`),
      card("tokens today", budget),
    ]),
    totals.shared ? "" : el("p", { class: "warning" }, "Redis is down: these counts are this gateway replica's only."),
    el("h2", {}, "The last 48 hours"),
    usageChart(history.hours),
  );
}

async function knowledge(body, { client, params }) {
  const call = (skill, input) => client.post(`/v1/agents/knowledge/skills/${skill}`, { input }).then((r) => r.output);
  const results = el("div", { id: "results" });
  const q = el("input", { id: "query", type: "search", placeholder: "Search the knowledge base…", required: true, value: params.get("source") || "" });
  const kb = el("select", { id: "kb" });
  const form = el("form", { id: "search", class: "row" }, [q, kb, el("button", { type: "submit" }, "Search")]);
  body.replaceChildren(el("h1", {}, "Knowledge"), el("div", { id: "bases" }, el("p", { class: "empty" }, "Loading…")), form, results);
  let bases = [];
  try {
    bases = (await call("bases", {})).bases;
    body.querySelector("#bases").replaceChildren(
      table(["knowledge base", "documents", "passages"], bases.map((b) => [b.name, String(b.documents), String(b.passages)]), { empty: "No knowledge base yet." }),
    );
  } catch (e) {
    notice(body.querySelector("#bases"), e instanceof ApiError && e.status === 404 ? new Error("The knowledge agent is not running.") : e);
  }
  kb.replaceChildren(...bases.map((b) => el("option", { value: b.name }, b.name)));
  const search = async (source) => {
    try {
      const found = await call("search", { query: q.value, k: 5, kb: kb.value || null, source: source || null });
      results.replaceChildren(
        ...(found.passages.length
          ? found.passages.map((p) => el("article", { class: "passage" }, [el("h3", {}, [p.title, p.heading].filter(Boolean).join(" — ")), el("p", { class: "meta" }, `${p.source} · score ${p.score.toFixed(2)}`), el("p", {}, p.text)]))
          : [el("p", { class: "empty" }, "Nothing found.")]),
      );
    } catch (e) {
      notice(results, e);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  if (params.get("source")) await search(params.get("source"));
}
