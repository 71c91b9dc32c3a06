import { defineConfig } from "vite";

// The built files are embedded in the verse binary (crates/verse-web/build.rs).
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // noVNC uses top-level await.
    target: "es2022",
    chunkSizeWarningLimit: 2048,
  },
});
