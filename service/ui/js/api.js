// The service's HTTP API as seen from the console: one fetch wrapper, the key, and the one error shape.

const KEY_STORAGE = "shitu.apiKey";
// The API lives at the app's root, one level above /ui/ (also behind a proxy that adds a path prefix).
const API_ROOT = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** What a person reads: the service's code and message, and what to do for a missing key or scope. */
  describe() {
    const problems = (this.details.problems || []).map((p) => `${p.field}: ${p.problem}`);
    let text = `${this.code}: ${this.message}`;
    if (problems.length && !this.message.includes(problems[0])) text += ` (${problems.join("; ")})`;
    if (this.status === 401) text += " — enter a valid API key at the top of the page.";
    if (this.status === 403) text += " — this API key lacks the permission for this action.";
    return text;
  }
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE) || "",
  set(value) {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  },
};

export function apiUrl(path, query = {}) {
  const url = new URL(path, API_ROOT);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

/** The raw response (for /ready, whose 503 body is not an error); network failures become an ApiError. */
export async function fetchApi(method, path, { query, form, json } = {}) {
  const headers = {};
  const key = apiKey.get();
  if (key) headers["X-API-Key"] = key;
  let body;
  if (form) body = form;
  else if (json !== undefined) {
    body = JSON.stringify(json);
    headers["Content-Type"] = "application/json";
  }
  try {
    return await fetch(apiUrl(path, query), { method, headers, body });
  } catch (error) {
    throw new ApiError(0, "network_error", `cannot reach the service (${error.message})`);
  }
}

/** JSON (or a Blob for other content); any non-2xx answer raises an ApiError with the service's message. */
export async function request(method, path, options = {}) {
  const response = await fetchApi(method, path, options);
  const type = response.headers.get("content-type") || "";
  if (!response.ok) {
    const body = type.includes("json") ? await response.json().catch(() => null) : null;
    const error = body && body.error;
    throw new ApiError(response.status, error?.code || "http_error",
      error?.message || `${response.status} ${response.statusText}`, error?.details || {});
  }
  return type.includes("json") ? response.json() : response.blob();
}

/** A background call (thumbnails) tried again after the Retry-After of a 429 (rate limit or overload). */
export async function patiently(call, tries = 3) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 429 || attempt >= tries) throw error;
      const seconds = Number(error.details.retry_after_s) || 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(seconds, 10) * 1000));
    }
  }
}

/** Runs at most `parallel` of the calls at once: thumbnails of a page stay within the service's admission limits. */
export function limiter(parallel) {
  let running = 0;
  const waiting = [];
  const next = () => {
    if (running >= parallel || !waiting.length) return;
    running += 1;
    const { call, resolve, reject } = waiting.shift();
    call().then(resolve, reject).finally(() => { running -= 1; next(); });
  };
  return (call) => new Promise((resolve, reject) => {
    waiting.push({ call: () => patiently(call), resolve, reject });
    next();
  });
}

export function formData(fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) form.append(name, value[0], value[1]);
    else form.append(name, typeof value === "boolean" ? String(value) : value);
  }
  return form;
}

export const path = (strings, ...values) =>
  strings.reduce((text, part, index) => text + part + (index < values.length ? encodeURIComponent(values[index]) : ""), "");
