// The BullMQ producer of `make bench` (tests/bench/peers.py), the same
// schedule as `jqload push` (tests/bench/jqload.c), through BullMQ's own
// client (its enqueue is a Lua script with msgpack-packed options that only
// the client knows how to call):
//
//   node bullmq_load.js SOCK N IDPREFIX RATE T0FILE NAME [DATA_JSON]
//
// RATE 0: N jobs with Queue.addBulk, 1,000 a call. RATE > 0: open loop, job
// i due at start + i / RATE whatever happens to the jobs already sent; every
// job due is added (Queue.add, jobId IDPREFIX<i>) and the batch's replies
// awaited, then the producer sleeps until the next due time (node timers:
// about 1 ms). T0FILE gets the N enqueue times (Unix seconds, float64 LE);
// one JSON line on stdout.
'use strict';
const fs = require('fs');
const { Queue } = require('bullmq');

const [sock, nArg, prefix, rateArg, t0file, name, dataArg] = process.argv.slice(2);
const n = Number(nArg);
const rate = Number(rateArg);
const data = dataArg ? JSON.parse(dataArg) : {};
const nowReal = () => (performance.timeOrigin + performance.now()) / 1000;
const nowMono = () => performance.now() / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const queue = new Queue('default', { connection: { path: sock } });
  await queue.waitUntilReady();
  const t0 = new Float64Array(n);
  const lags = new Float64Array(n);
  const start = nowMono() + 0.005;
  let first = 0;
  let last = 0;
  let errors = 0;
  if (rate <= 0) {
    for (let base = 0; base < n; base += 1000) {
      const jobs = [];
      for (let i = base; i < Math.min(n, base + 1000); i++) {
        t0[i] = nowReal();
        jobs.push({ name, data, opts: { jobId: prefix + i } });
      }
      await queue.addBulk(jobs);
    }
    first = start;
    last = nowMono();
  } else {
    let next = 0;
    while (next < n) {
      const now = nowMono();
      let due = Math.floor((now - start) * rate) + 1;
      if (due > n) due = n;
      if (due <= next) {
        await sleep(Math.max(0, (start + next / rate - now) * 1000));
        continue;
      }
      const batch = [];
      for (let i = next; i < due; i++) {
        const t = nowMono();
        lags[i] = t - (start + i / rate);
        if (i === 0) first = t;
        t0[i] = nowReal();
        batch.push(queue.add(name, data, { jobId: prefix + i }).catch(() => { errors++; }));
      }
      last = nowMono();
      await Promise.all(batch);
      next = due;
    }
  }
  fs.writeFileSync(t0file, Buffer.from(t0.buffer));
  const sorted = Array.from(lags).sort((a, b) => a - b);
  const pct = (p) => sorted[Math.max(0, Math.min(n - 1, Math.ceil(p / 100 * n) - 1))] * 1e3;
  const span = last - first;
  console.log(JSON.stringify({
    sent: n, errors, rate, achieved_rate: span > 0 ? (n - 1) / span : 0, seconds: nowMono() - start,
    lag_p50_ms: rate > 0 ? pct(50) : 0, lag_p99_ms: rate > 0 ? pct(99) : 0, lag_max_ms: rate > 0 ? sorted[n - 1] * 1e3 : 0,
  }));
  await queue.close();
}
main().catch((e) => { console.error('bullmq_load:', e.message); process.exit(1); });
