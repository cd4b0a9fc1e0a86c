// A drawn chart as a file: the chart library (recharts) draws SVG, so SVG is that element serialized, and PNG
// is the same SVG rasterized on a canvas, both in the browser; the server never renders charts.

const SVG_NS = "http://www.w3.org/2000/svg";

/** The chart's SVG as a standalone document: namespaced (XMLSerializer declares the SVG namespace of an element
 *  in an HTML page; setting `xmlns` too makes it twice, an invalid file), sized, on a white background, with the page's font
 *  (text inherits it from CSS, which a file opened on its own does not have). */
export function chartSvg(figure: Element): { text: string; width: number; height: number } {
  const svg = figure.querySelector("svg.recharts-surface") ?? figure.querySelector("svg");
  if (!svg) throw new Error("no chart is drawn yet");
  const width = Number(svg.getAttribute("width")) || svg.clientWidth || 640;
  const height = Number(svg.getAttribute("height")) || svg.clientHeight || 320;
  const copy = svg.cloneNode(true) as SVGSVGElement;
  copy.setAttribute("width", String(width));
  copy.setAttribute("height", String(height));
  copy.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const font = getComputedStyle(svg).fontFamily;
  copy.setAttribute("font-family", font || "sans-serif");
  const background = document.createElementNS(SVG_NS, "rect");
  background.setAttribute("width", "100%");
  background.setAttribute("height", "100%");
  background.setAttribute("fill", "#ffffff");
  copy.insertBefore(background, copy.firstChild);
  const text = `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(copy)}`;
  return { text, width, height };
}

/** The SVG rasterized at `scale` (2: sharp on high-density screens and in slides). */
export async function chartPng(figure: Element, scale = 2): Promise<Blob> {
  const { text, width, height } = chartSvg(figure);
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  try {
    const image = new Image();
    image.decoding = "sync";
    await new Promise<void>((resolve, reject) => {
      image.onload = () => resolve();
      image.onerror = () => reject(new Error("the browser could not draw the chart's SVG"));
      image.src = url;
    });
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const context = canvas.getContext("2d");
    if (!context) throw new Error("this browser has no 2D canvas");
    context.scale(scale, scale);
    context.drawImage(image, 0, 0, width, height);
    return await new Promise<Blob>((resolve, reject) =>
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the canvas gave no PNG"))), "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}
