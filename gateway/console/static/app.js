// The console: sign in with an API key (kept in this tab's session only), then the pages.

import { ApiError, Client, session } from "./api.js";
import { renderChat } from "./chat.js";
import { renderDesk } from "./desk.js";
import { renderTrace } from "./trace.js";
import { el } from "./ui.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let cleanups = [];

function signIn(reason) {
  nav.hidden = true;
  who.replaceChildren();
  const key = el("input", { type: "password", name: "key", placeholder: "hw_…", autocomplete: "off", required: true });
  const error = el("p", { class: "error", role: "alert" }, reason || "");
  const form = el("form", { id: "sign-in", class: "card narrow" }, [
    el("h1", {}, "Sign in"),
    el("p", {}, "Paste an API key (hivewire keys create --tenant NAME, or the one hivewire up printed). It stays in this tab only."),
    el("label", {}, ["API key", key]),
    el("button", { type: "submit" }, "Sign in"),
    error,
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const me = await new Client({ key: key.value.trim() }).get("/v1/me");
      session.key = key.value.trim();
      sessionStorage.setItem("hivewire.tenant", me.tenant);
      route();
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401 ? "That key is not valid." : e.message;
    }
  });
  main.replaceChildren(form);
  key.focus();
}

function signOut() {
  session.key = null;
  sessionStorage.removeItem("hivewire.tenant");
  location.hash = "#/chat";
  signIn();
}

async function route() {
  for (const cleanup of cleanups.splice(0)) cleanup();
  if (!session.key) return signIn();
  const client = new Client({ key: session.key });
  const tenant = sessionStorage.getItem("hivewire.tenant");
  nav.hidden = false;
  who.replaceChildren(
    el("span", { class: "tenant", id: "tenant" }, `tenant ${tenant}`),
    el("button", { class: "link", id: "sign-out", onclick: signOut }, "Sign out"),
  );
  const [path, search] = (location.hash.slice(1) || "/chat").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(search || "");
  const page = parts[0] === "desk" ? parts[1] : parts[0];
  for (const link of nav.querySelectorAll("a[data-page]")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  const context = { client, tenant, params, onLeave: (cleanup) => cleanups.push(cleanup) };
  // A view of its own per navigation: a page still loading when the next one is asked for
  // draws into a view that is no longer shown.
  const view = el("div", { class: "view" });
  main.replaceChildren(view);
  try {
    if (parts[0] === "trace") await renderTrace(view, context, parts[1]);
    else if (parts[0] === "desk") await renderDesk(view, context, parts[1] || "handoffs", parts[2]);
    else await renderChat(view, context, parts[1]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signOut();
    view.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

window.addEventListener("hashchange", route);
route();
