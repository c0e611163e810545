#!/usr/bin/env node
// Launcher for `npx seglog`: runs the compiled CLI (built into dist/ by npm install's prepare step).
import '../dist/cli/main.js';
