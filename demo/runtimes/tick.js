// tick.js N OUT: an event loop under Node.js. Every 30 ms (setInterval) it
// appends a line to OUT and reads the file back (fs.promises: the thread
// pool, and the eventfd that wakes the loop), then prints what it read.
const fs = require('fs');
const n = parseInt(process.argv[2], 10);
const out = process.argv[3];
let i = 0;
const timer = setInterval(async () => {
  const k = ++i;
  if (k > n) return;
  await fs.promises.appendFile(out, `line ${k}\n`);
  const text = await fs.promises.readFile(out, 'utf8');
  const lines = text.split('\n').filter(Boolean);
  console.log(`tick ${k}: ${lines.length} lines, last "${lines[lines.length - 1]}"`);
  if (k === n) {
    clearInterval(timer);
    console.log('done');
  }
}, 30);
