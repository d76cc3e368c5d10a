// BullMQ side of `make bench` (tests/bench/peers.py): one worker process on
// queue "default" of the bench's private redis-server (BENCH_REDIS_SOCK),
// concurrency BENCH_BULLMQ_CONCURRENCY (default 1, BullMQ's default). Jobs
// named "noop" and "wordcount" do what jobq's built-in handlers do; each
// returns the time it started (Unix seconds, microseconds), which BullMQ
// stores in the job's returnvalue next to finishedOn.
'use strict';
const { Worker } = require('bullmq');
const http = require('http');

const agent = new http.Agent({ keepAlive: true });
const now = () => (performance.timeOrigin + performance.now()) / 1000;

function get(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 30000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function countWords(buf) {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    const space = c === 32 || (c >= 9 && c <= 13);
    if (!space && !inWord) n++;
    inWord = !space;
  }
  return n;
}

const worker = new Worker('default', async (job) => {
  const t = now();
  if (job.name === 'wordcount') {
    const { status, body } = await get(job.data.url);
    return { started_at: t, url: job.data.url, http_status: status, bytes: body.length, words: countWords(body) };
  }
  return { started_at: t };
}, {
  connection: { path: process.env.BENCH_REDIS_SOCK, maxRetriesPerRequest: null },
  concurrency: Number(process.env.BENCH_BULLMQ_CONCURRENCY || 1),
});
worker.on('error', (e) => console.error('bullmq worker:', e.message));
const stop = async () => { await worker.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
