// tick.js N OUT: an event loop under Node.js. Every 30 ms (setInterval) a
// step is queued: it appends a line to OUT and reads the file back
// (fs.promises: the thread pool, and the eventfd that wakes the loop), then
// prints what it read. Steps run one after the other (a promise chain), so
// the output does not depend on how late a tick comes.
const fs = require('fs');
const n = parseInt(process.argv[2], 10);
const out = process.argv[3];

async function step(k) {
  await fs.promises.appendFile(out, `line ${k}\n`);
  const text = await fs.promises.readFile(out, 'utf8');
  const lines = text.split('\n').filter(Boolean);
  console.log(`tick ${k}: ${lines.length} lines, last "${lines[lines.length - 1]}"`);
}

let i = 0;
let chain = Promise.resolve();
const timer = setInterval(() => {
  const k = ++i;
  chain = chain.then(() => step(k));
  if (k === n) {
    clearInterval(timer);
    chain.then(() => console.log('done'));
  }
}, 30);
