// node_timers.js: a small Node.js program for the node_regions test.
//
//   node node_timers.js [STEPS]        (STEPS default 40, 100 ms apart; no
//                                       pause once $COHORT_TEST_TMP/fast exists)
//
// Every step waits on a timer, adds 5000 entries to a Map (and, after step
// 8, deletes those of 8 steps before: V8's heap, which it marks
// MADV_DONTFORK, grows and churns), appends a progress line to
// $COHORT_TEST_TMP/node_timers.log with fs.promises and reads the file
// back: it must hold exactly one line per step so far, the last one this
// step's.  Then it prints the same line.  At the end: the file is removed
// and "RESULT node_timers STEPS <bytes of the file>" printed.  Any mismatch
// goes to stderr with exit status 1.
'use strict';
const fs = require('fs/promises');
const os = require('os');
const path = require('path');

const steps = Number(process.argv[2]) || 40;
const log = path.join(process.env.COHORT_TEST_TMP || os.tmpdir(), 'node_timers.log');
const map = new Map();

function fail(msg) {
	process.stderr.write(`node_timers: FAILED: ${msg}\n`);
	process.exit(1);
}

const fast = path.join(process.env.COHORT_TEST_TMP || os.tmpdir(), 'fast');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// the pause between steps, unless the test made the file "fast" (a restart it lets run to the end)
const pace = (ms) => fs.access(fast).then(() => sleep(0), () => sleep(ms));

async function step(s) {
	for (let k = 0; k < 5000; k++) map.set(`${s}:${k}`, { s, k, text: 'v'.repeat(k % 64) });
	if (s > 8) for (let k = 0; k < 5000; k++) map.delete(`${s - 8}:${k}`);
	let sum = 0;
	for (const v of map.values()) sum = (sum * 31 + v.k + v.s + v.text.length) % 1000000007;
	const line = `step ${s} entries ${map.size} sum ${sum}`;
	await fs.appendFile(log, line + '\n');
	const lines = (await fs.readFile(log, 'utf8')).split('\n').filter(Boolean);
	if (lines.length !== s) fail(`${log} has ${lines.length} lines at step ${s}`);
	if (lines[s - 1] !== line) fail(`${log}: last line '${lines[s - 1]}', expected '${line}'`);
	console.log(line);
}

async function main() {
	await fs.writeFile(log, '');
	for (let s = 1; s <= steps; s++) {
		await pace(100);
		await step(s);
	}
	const size = (await fs.stat(log)).size;
	await fs.unlink(log);
	console.log(`RESULT node_timers ${steps} ${size}`);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
