// The gateway's HTTP API: JSON calls with the API key, errors as problem documents.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export class Client {
  // base: the gateway's URL ("" for the page's own origin); key: an API key.
  constructor({ base = "", key }) {
    this.base = base.replace(/\/$/, "");
    this.key = key;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.key}`, ...extra };
  }

  async call(path, { method = "GET", body, signal } = {}) {
    const headers = this.headers(body === undefined ? {} : { "Content-Type": "application/json" });
    const response = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    if (!response.ok) {
      let problem = {};
      try {
        problem = await response.json();
      } catch {
        // not a problem document: the status says enough
      }
      throw new ApiError(response.status, problem);
    }
    return response.status === 204 ? null : response.json();
  }

  get(path, options) {
    return this.call(path, options);
  }

  post(path, body = {}, options = {}) {
    return this.call(path, { ...options, method: "POST", body });
  }
}

// The console keeps the key in this tab's session only: closing the tab forgets it.
const KEY = "hivewire.key";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export function query(params) {
  const found = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return found.length ? "?" + new URLSearchParams(found).toString() : "";
}

// A fresh random id (crypto.randomUUID needs a secure context; a widget's host page may not be one).
export function newId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
