// fs.watch on a directory (libuv's inotify): a file made, written,
// renamed and removed while the event loop is held, so that the events
// are queued when the checkpoint comes (after "queued"); the loop then
// runs once go.1 exists in COHORT_TEST_TMP, and prints what it heard.
const fs = require('fs');
const path = require('path');
const tmp = process.env.COHORT_TEST_TMP || '/tmp';
const dir = path.join(tmp, 'watched');
const go = path.join(tmp, 'go.1');
fs.mkdirSync(dir, { recursive: true });
const heard = [];
const w = fs.watch(dir, (ev, name) => heard.push(ev + ' ' + name));
setTimeout(() => {
	fs.writeFileSync(path.join(dir, 'a'), 'x');
	fs.renameSync(path.join(dir, 'a'), path.join(dir, 'b'));
	fs.unlinkSync(path.join(dir, 'b'));
	console.log('queued');
	// the loop held (no read of the inotify descriptor) until go.1
	const sab = new Int32Array(new SharedArrayBuffer(4));
	while (!fs.existsSync(go)) Atomics.wait(sab, 0, 0, 10);
	setTimeout(() => {
		console.log(heard.join('\n'));
		w.close();
		console.log('RESULT inotify_watch ok ' + heard.length);
	}, 300);
}, 100);
