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
    rollupOptions: {
      output: {
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom", "@tanstack/react-query"],
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
