// Node.js with timers and fs.promises (tests/cases/real.sh, real_node):
// 50 steps, each started by a timer (setTimeout, setImmediate and a
// setInterval running beside them), each appending a line to a file
// through a FileHandle kept open and reading the whole file back with
// fs.promises.readFile, checking it line by line against what the program
// holds in memory.  Prints "step N lines N hash H" after each step and
// "RESULT ..." at the end; any mismatch prints "ERROR ..." and exits 1.
// COHORT_TEST_GATES="S1 S2 ...": after step Sk it waits until the file go.k
// exists in COHORT_TEST_TMP (tests/cases/migrate_real.sh migrates it at
// known steps); unset, it never waits.
'use strict';
const fsp = require('fs').promises;
const path = require('path');

const STEPS = 50;
const dir = process.env.COHORT_TEST_TMP || '/tmp';
const file = path.join(dir, 'timers.log');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const immediate = () => new Promise((resolve) => setImmediate(resolve));

function fnv(h, s) {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}

async function gate(step) {
  const gates = (process.env.COHORT_TEST_GATES || '').split(/\s+/);
  const k = gates.indexOf(String(step));
  if (k < 0) return;
  const go = path.join(dir, `go.${k + 1}`);
  for (;;) {
    try {
      await fsp.access(go);
      return;
    } catch (e) {
      await sleep(20);
    }
  }
}

function die(msg) {
  console.log(`ERROR ${msg}`);
  process.exit(1);
}

async function main() {
  let ticks = 0;
  const iv = setInterval(() => { ticks++; }, 7);
  const fh = await fsp.open(file, 'w+');
  const lines = [];
  let h = 2166136261;
  for (let i = 1; i <= STEPS; i++) {
    await sleep(60);
    await immediate();
    const line = `line ${i} ${(i * 7919) % 1000} ${'x'.repeat(i % 13)}`;
    lines.push(line);
    await fh.write(line + '\n');
    h = fnv(h, line);
    const text = await fsp.readFile(file, 'utf8');
    const got = text.split('\n');
    if (got.pop() !== '') die(`step ${i}: the file does not end with a newline`);
    if (got.length !== i) die(`step ${i}: the file has ${got.length} lines`);
    for (let j = 0; j < i; j++) {
      if (got[j] !== lines[j]) die(`step ${i}: line ${j + 1} is '${got[j]}', expected '${lines[j]}'`);
    }
    const st = await fh.stat();
    if (st.size !== text.length) die(`step ${i}: fstat size ${st.size}, file read ${text.length}`);
    let h2 = 2166136261;
    for (const l of lines) h2 = fnv(h2, l);
    if (h2 !== h) die(`step ${i}: hash ${h2} recomputed, ${h} kept`);
    console.log(`step ${i} lines ${got.length} hash ${h.toString(16)}`);
    await gate(i);
  }
  clearInterval(iv);
  await fh.close();
  if (ticks < 1) die('the interval timer never fired');
  console.log(`RESULT steps ${STEPS} lines ${lines.length} hash ${h.toString(16)}`);
}

main().catch((e) => die(String(e && e.stack || e)));
