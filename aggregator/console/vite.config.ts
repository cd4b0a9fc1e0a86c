import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Relative asset URLs ("./assets/..."): index.html's <base href> (set by the proxy) anchors them, so one build
// works under any path prefix. Hashed file names let the proxy cache assets as immutable.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // Deterministic output: no inlined assets whose size could vary, one chunk per page (React.lazy).
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 600,
    // CommonJS dependencies (lodash under the form library) are all wrapped the same way: with the default
    // "auto", whether a module is wrapped depends on which cycles the parallel transform has seen so far,
    // and two builds of the same sources differ.
    commonjsOptions: { strictRequires: true },
    rollupOptions: {
      output: {
        // Every dependency in a named chunk. Left to Rollup, the modules two lazy pages share (lodash, used by
        // both the form library and the chart library) are split into chunks whose contents depend on the
        // order CommonJS modules finish transforming, and the build stops being reproducible.
        manualChunks(id: string): string | undefined {
          const found = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(id);
          if (!found) return undefined;
          const pkg = found[1];
          if (/^(react|react-dom|scheduler|react-router|react-router-dom|@remix-run\/router|@tanstack\/.*)$/.test(pkg))
            return "react";
          // d3's colour and interpolation modules serve both the charts and the graph: a chunk of their own, or
          // the two lazy chunks would import each other.
          if (/^(d3-color|d3-interpolate)$/.test(pkg)) return "d3";
          // The builder's graph (React Flow and the d3 modules only it uses) and its YAML library: loaded with it.
          if (/^(@xyflow\/.*|classcat|zustand|d3-(drag|zoom|selection|transition|dispatch|ease|timer)|yaml|diff)$/.test(pkg))
            return "flow";
          if (/^(recharts|recharts-scale|react-smooth|victory-vendor|d3-.*|internmap|decimal\.js-light|eventemitter3|fast-equals|react-transition-group|dom-helpers|tiny-invariant)$/.test(pkg))
            return "charts";
          return "vendor"; // the form library, its validator, lodash and the small helpers everyone shares
        },
      },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test/setup.ts"],
  },
});
