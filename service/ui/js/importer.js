// Import a PaddleClas list file from the browser: each listed image is posted to POST /gallery in turn.
// The list's rules are service/gallery/listfile.py's; item ids are shitu gallery import's (label-<sha1[:16]>),
// so importing the same list from the CLI or from here gives the same items.

import { formData, request } from "./api.js";
import { $, describeError, h } from "./dom.js";
import { galleryChanged, loadPage } from "./gallery.js";

let stopping = false;

export function initImport() {
  $("#import-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runImport().catch((error) => { $("#import-status").textContent = describeError(error); });
  });
  $("#import-cancel").addEventListener("click", () => { stopping = true; });
}

/** [{path, label, line}] from the list text; a malformed line fails the whole list, naming the line. */
export function parseList(text) {
  const entries = [];
  text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/).forEach((line, index) => {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) return;
    let columns;
    if (line.includes("\t")) {
      const [first, ...rest] = line.split("\t");
      columns = rest.length === 1 ? [first.trim(), rest[0].trim()] : null;
    } else {
      const words = trimmed.split(/\s+/);
      columns = words.length === 2 ? words : null;
    }
    if (!columns || !columns[0] || !columns[1]) {
      throw new Error(`line ${index + 1}: expected 'path<TAB>label' (or 'path label' without other spaces), got '${trimmed}'`);
    }
    entries.push({ path: columns[0].replace(/^\.\//, ""), label: columns[1], line: index + 1 });
  });
  return entries;
}

/** Finds each listed path among the picked files: by path below the picked folder, else by a unique name. */
function fileFinder(files) {
  const byPath = new Map();
  const byName = new Map();
  for (const file of files) {
    const relative = file.webkitRelativePath || file.name;
    byPath.set(relative, file);
    byPath.set(relative.split("/").slice(1).join("/"), file); // without the picked folder's own name
    byName.set(file.name, byName.has(file.name) ? null : file);
  }
  return (listed) => byPath.get(listed) || byName.get(listed.split("/").pop()) || null;
}

async function itemIdFor(label, known) {
  if (known.has(label)) return known.get(label);
  const found = await request("GET", "gallery/items", { query: { label, limit: 1 } });
  let itemId = found.items[0]?.item_id;
  if (!itemId && crypto.subtle) { // absent outside secure contexts: the service then makes the id
    const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(label));
    itemId = "label-" + [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("").slice(0, 16);
  }
  known.set(label, itemId);
  return itemId;
}

async function runImport() {
  const listFile = $("#import-list").files[0];
  if (!listFile) throw new Error("choose the list file");
  const entries = parseList(await listFile.text());
  const find = fileFinder([...$("#import-files").files, ...$("#import-folder").files]);
  const detect = $("#import-detect").checked;
  const progress = $("#import-progress");
  const failures = $("#import-failures");
  const counts = { added: 0, unchanged: 0, failed: 0 };
  const known = new Map();
  Object.assign(progress, { value: 0, max: Math.max(entries.length, 1), hidden: false });
  failures.replaceChildren();
  stopping = false;
  $("#import-start").disabled = true;
  $("#import-cancel").disabled = false;
  const report = (done) => {
    progress.value = done;
    $("#import-status").textContent = `${done} of ${entries.length}: ${counts.added} added, `
      + `${counts.unchanged} unchanged, ${counts.failed} failed${stopping ? " (stopped)" : ""}.`;
  };
  report(0);
  try {
    for (const [index, entry] of entries.entries()) {
      if (stopping) break;
      try {
        const file = find(entry.path);
        if (!file) throw new Error("image file not picked");
        const itemId = await itemIdFor(entry.label, known);
        const enrolment = await request("POST", "gallery", { form: formData({
          image: [file, file.name], label: entry.label, item_id: itemId, detect }) });
        known.set(entry.label, enrolment.item.item_id);
        counts[enrolment.created_image ? "added" : "unchanged"] += 1;
      } catch (error) {
        counts.failed += 1;
        failures.append(h("li", { text: `line ${entry.line} (${entry.path}): ${describeError(error)}` }));
      }
      report(index + 1);
    }
  } finally {
    $("#import-start").disabled = false;
    $("#import-cancel").disabled = true;
    galleryChanged();
    loadPage();
  }
}
