// Small DOM helpers: build elements, show messages, ask for confirmation.

import { ApiError } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

function build(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) element.append(child);
  }
  return element;
}

export const h = (tag, attributes, ...children) => build(document.createElement(tag), attributes, children);
export const svg = (tag, attributes, ...children) => build(document.createElementNS(SVG, tag), attributes, children);
export const $ = (selector) => document.querySelector(selector);

export function describeError(error) {
  return error instanceof ApiError ? error.describe() : String(error?.message || error);
}

/** The page-wide message line; errors stay until dismissed, other messages for a few seconds. */
let noticeTimer;
export function notify(message, { error = false } = {}) {
  const notice = $("#notice");
  $("#notice-text").textContent = message;
  notice.classList.toggle("is-error", error);
  notice.hidden = false;
  clearTimeout(noticeTimer);
  if (!error) noticeTimer = setTimeout(() => { notice.hidden = true; }, 6000);
}

export const showError = (error) => notify(describeError(error), { error: true });

export function confirmAction(message, action = "Delete") {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = message;
  $("#confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export const formatScore = (score) => Number(score).toFixed(3);

export function parseMetadata(text) {
  if (!text.trim()) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`metadata is not JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error("metadata must be a JSON object, e.g. {\"sku\": \"A-1\"}");
  }
  return value;
}
