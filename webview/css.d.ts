/** Style sheets imported by the pages: esbuild bundles them into <page>.css. */
declare module '*.css';
