// Builds the console to one static file, dist/index.html, with its script and styles
// inline. mosquitto's http_dir (libwebsockets) sends .js and .css files without a
// Content-Type, and browsers refuse a module script or a stylesheet without one; an HTML
// page is sniffed and shown. One file also makes the package and any web server simple.
import { defineConfig, type Plugin } from 'vite';
import type { OutputAsset, OutputChunk } from 'rollup';

function inlineIntoHtml(): Plugin {
  return {
    name: 'lanegate-inline-into-html',
    enforce: 'post',
    generateBundle(_options, bundle) {
      const page = bundle['index.html'] as OutputAsset | undefined;
      if (!page) return;
      let html = String(page.source);
      let code = '';
      let css = '';
      for (const [name, item] of Object.entries(bundle)) {
        if (item.type === 'chunk') {
          code += (item as OutputChunk).code;
          delete bundle[name];
        } else if (name.endsWith('.css')) {
          css += String(item.source);
          delete bundle[name];
        }
      }
      html = html.replace(/<script[^>]*src="[^"]*"[^>]*><\/script>\s*/g, '');
      html = html.replace(/<link rel="stylesheet"[^>]*>\s*/g, '');
      html = html.replace('</head>', () => `<style>${css}</style>\n</head>`);
      // A classic script at the end of the body: it runs once the page exists.
      const safe = code.replace(/<\/(script)/gi, '<\\/$1');
      html = html.replace('</body>', () => `<script>${safe}</script>\n</body>`);
      page.source = html;
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [inlineIntoHtml()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    modulePreload: false,
    cssCodeSplit: false,
    assetsInlineLimit: 100_000,
    chunkSizeWarningLimit: 1000,
    rollupOptions: { output: { format: 'iife', inlineDynamicImports: true } },
  },
});
