/**
 * npx tsx bench/http-path.ts [--requests=20000] [--conc=32]
 * The HTTP path's own cost per request, without a database: the POST /orders route's work (JSON body, zod
 * validation of body and headers, a 202 JSON answer) served by (a) the services' express app as it is built
 * (security headers, request context, JSON parser, router) and (b) a bare node:http handler doing the same work.
 * Each server runs in a child process of its own and reports its CPU per request; the client is this process.
 * Prints both and the ratio: what a lighter router could save per order, for the decision record.
 */
import http from 'node:http';
import { fork, type ChildProcess } from 'node:child_process';
import { Registry } from 'prom-client';
import { Router } from 'express';
import { createHttpApp, finishHttpApp, parseRequest } from '@saga/common/http/app';
import { createLogger } from '@saga/common/runtime/logger';
import { PlaceOrderBody } from '../services/order/src/http/order-schemas';
import { z } from 'zod';
import { jsonPoster } from './http-client';

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const Headers = z.object({ 'idempotency-key': z.string().max(200).optional() });
const answer = { orderId: '6f1c1c8e-8a52-4d0e-9f5e-0d6c9b1f7c11', status: 'PENDING' };

function expressServer(): http.Server {
  const app = createHttpApp(createLogger('bench', 'warn'), new Registry());
  const r = Router();
  r.post('/orders', (req, res) => {
    parseRequest(Headers, req.headers, 'headers');
    parseRequest(PlaceOrderBody, req.body, 'body');
    res.status(202).setHeader('Location', `/orders/${answer.orderId}`).json(answer);
  });
  app.use(r);
  finishHttpApp(app);
  return http.createServer(app);
}

function bareServer(): http.Server {
  return http.createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      Headers.parse(req.headers);
      PlaceOrderBody.parse(JSON.parse(text));
      const body = JSON.stringify(answer);
      res.writeHead(202, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        location: `/orders/${answer.orderId}`,
      });
      res.end(body);
    });
  });
}

/** Child: serve with the kind named in argv, report the port, then CPU used when asked. */
function serve(kind: string) {
  const server = kind === 'express' ? expressServer() : bareServer();
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.send!({ port: (server.address() as { port: number }).port });
  });
  process.on('message', (m: string) => {
    if (m === 'exit') process.exit(0);
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ cpuUs: u.user + u.system });
    }
  });
}

const ask = <T>(child: ChildProcess, msg?: string) =>
  new Promise<T>((resolve) => {
    child.once('message', (m) => resolve(m as T));
    if (msg) child.send(msg);
  });

/** `requests` POSTs from `conc` keep-alive connections, with the bench's own client; each must be answered 202. */
async function load(port: number, requests: number, conc: number): Promise<void> {
  const poster = jsonPoster(`http://127.0.0.1:${port}`, conc);
  const body = { items: [{ sku: 'sku-1', quantity: 2 }] };
  let sent = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (sent++ < requests) {
        const r = await poster.post('/orders', body);
        if (r.status !== 202) throw new Error(`status ${r.status}`);
      }
    }),
  );
  poster.close();
}

async function measure(kind: string, requests: number, conc: number): Promise<number> {
  const child = fork(__filename, ['--serve', kind], { execArgv: process.execArgv });
  const { port } = await ask<{ port: number }>(child);
  await load(port, Math.min(2000, requests), conc); // warm-up: JIT, connections
  const before = await ask<{ cpuUs: number }>(child, 'cpu');
  await load(port, requests, conc);
  const after = await ask<{ cpuUs: number }>(child, 'cpu');
  child.kill();
  return (after.cpuUs - before.cpuUs) / requests;
}

async function main() {
  const requests = arg('requests', 20_000);
  const conc = arg('conc', 32);
  const rounds: { express: number; bare: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const express = await measure('express', requests, conc);
    const bare = await measure('bare', requests, conc);
    rounds.push({ express, bare });
    console.log(`round ${i + 1}: express ${express.toFixed(0)} µs/request, node:http ${bare.toFixed(0)} µs/request`);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const e = median(rounds.map((r) => r.express));
  const b = median(rounds.map((r) => r.bare));
  console.log(
    `median of 3: express app ${e.toFixed(0)} µs, node:http ${b.toFixed(0)} µs of server CPU per POST; node:http/express ${(b / e).toFixed(2)}`,
  );
}

if (process.argv[2] === '--serve') serve(process.argv[3]!);
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
