// Gallery photos through the API (so the API key is sent), kept as object URLs for the session.

import { limiter, path, request } from "./api.js";
import { describeError, h, svg } from "./dom.js";

const KEPT = 300;
export const background = limiter(4); // thumbnails and the lookups behind them, a few at a time
const urls = new Map(); // image_id -> Promise<object URL>, oldest first

function imageUrl(imageId) {
  if (urls.has(imageId)) {
    const url = urls.get(imageId);
    urls.delete(imageId);
    urls.set(imageId, url); // most recently used last
    return url;
  }
  const url = background(() => request("GET", path`gallery/images/${imageId}/file`))
    .then((blob) => URL.createObjectURL(blob));
  url.catch(() => urls.delete(imageId));
  urls.set(imageId, url);
  while (urls.size > KEPT) {
    const [oldest, promise] = urls.entries().next().value;
    urls.delete(oldest);
    promise.then((objectUrl) => URL.revokeObjectURL(objectUrl), () => {});
  }
  return url;
}

export function forgetImage(imageId) {
  const url = urls.get(imageId);
  urls.delete(imageId);
  url?.then((objectUrl) => URL.revokeObjectURL(objectUrl), () => {});
}

/** An <img> filled in when the bytes arrive; a failed load says why in its place. */
export function thumbnail(imageId, alt, className = "thumb") {
  const image = h("img", { class: className, alt, dataset: { imageId } });
  imageUrl(imageId).then(
    (url) => { image.src = url; },
    (error) => {
      image.replaceWith(h("span", { class: `${className} missing`, title: describeError(error), text: "no image" }));
    },
  );
  return image;
}

/** A gallery photo with the region that was embedded outlined (the whole photo when box is null). */
export function framedPhoto(image, alt) {
  const picture = thumbnail(image.image_id, alt, "framed");
  const frame = h("div", { class: "stage" }, picture);
  if (image.bbox) {
    picture.addEventListener("load", () => {
      const [x1, y1, x2, y2] = image.bbox;
      const overlay = svg("svg", { viewBox: `0 0 ${picture.naturalWidth} ${picture.naturalHeight}`, "aria-hidden": "true" },
        svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, class: "embedded" }));
      frame.append(overlay);
    }, { once: true });
  }
  return frame;
}
