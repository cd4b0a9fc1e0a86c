// The SVG a chart exports is a standalone document: namespaced, sized, with a white background first.
import { describe, expect, it } from "vitest";

import { chartSvg } from "./chartExport";

describe("chartSvg", () => {
  it("serializes the drawn chart as a standalone SVG document", () => {
    const figure = document.createElement("figure");
    figure.innerHTML = '<svg class="recharts-surface" width="400" height="200"><rect class="bar" fill="#0b57d0" ' +
      'width="10" height="20"></rect><text>north</text></svg>';
    const { text, width, height } = chartSvg(figure);
    expect([width, height]).toEqual([400, 200]);
    const doc = new DOMParser().parseFromString(text.replace(/^<\?xml[^>]*>\n/, ""), "image/svg+xml");
    const root = doc.documentElement;
    expect(root.namespaceURI).toBe("http://www.w3.org/2000/svg");
    expect(root.getAttribute("viewBox")).toBe("0 0 400 200");
    expect(root.firstElementChild?.getAttribute("fill")).toBe("#ffffff");
    expect(root.querySelector("rect.bar")?.getAttribute("fill")).toBe("#0b57d0");
    expect(root.textContent).toContain("north");
    expect(figure.querySelectorAll("svg > rect")).toHaveLength(1); // the page's chart is left as it was
  });

  it("says so when no chart is drawn", () => {
    expect(() => chartSvg(document.createElement("figure"))).toThrow("no chart is drawn yet");
  });
});
