/**
 * A rehearsal of the dev overlay without a cluster (none here, and no images): from `kubectl kustomize
 * k8s/overlays/dev`, the setup/migrate Job's containers run in order, then the relay and every Deployment, each with
 * the command its object gives and the environment it would get (ConfigMap values, Secret values, Secrets written to
 * the `*_FILE` paths they mount), against PostgreSQL servers started with the StatefulSets' args (scratch clusters)
 * and the machine's RabbitMQ (a vhost of its own). Each must become ready on its readiness probe's path.
 * Not rehearsed: Kubernetes itself (scheduling, the image, the security context, probes' timing, network policies,
 * DNS); cluster addresses are rewritten to the local servers, and each HTTP port to a free one.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DATABASE_OWNERS, type DatabaseOwner } from '@saga/common/contracts/service-names';
import { asServerOptions, commandLineSettings } from '../support/deployment-postgres';
import { rabbitmqctl } from '../support/env';
import { hasKubectl, renderKustomize, type K8sObject } from '../support/packaging';
import { createServers, freePort, type PgServers } from '../support/pg-cluster';
import { killAll, ROOT, startProcess, type Running } from '../support/process';
import { waitUntil } from '../support/wait';

delete process.env.PG_RESTART_COMMAND;
const RABBIT = new URL(process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');

type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: { name: string; key: string }; secretKeyRef?: { name: string; key: string } };
};
type Container = {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  volumeMounts?: { name: string; mountPath: string }[];
};
type Pod = {
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } }[];
};

const podOf = (o: K8sObject) => (o.spec as { template: { spec: Pod } }).template.spec;

describe('k8s dev overlay, rehearsed without a cluster', () => {
  const clusters: PgServers[] = [];
  const running: Running[] = [];
  const vhost = `tk8s_${randomBytes(3).toString('hex')}`;
  const files = mkdtempSync(path.join(os.tmpdir(), 'saga-k8s-'));

  afterAll(async () => {
    await Promise.all(running.map((p) => p.kill('SIGTERM')));
    await killAll();
    for (const c of clusters) c.close();
    try {
      rabbitmqctl('delete_vhost', vhost);
    } catch {
      /* never made */
    }
    rmSync(files, { recursive: true, force: true });
  });

  (hasKubectl() ? it : it.skip)(
    "runs the Job's setup and migrate, then the relay and every Deployment to ready, with the environment their objects give",
    async () => {
      const objects = renderKustomize(path.join(ROOT, 'k8s/overlays/dev'));
      const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
      const data = new Map<string, Record<string, string>>();
      for (const o of [...byKind('ConfigMap'), ...byKind('Secret')]) {
        const d = (o.data ?? {}) as Record<string, string>;
        const decoded =
          o.kind === 'Secret'
            ? Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]))
            : d;
        data.set(`${o.kind}/${o.metadata.name}`, { ...decoded, ...((o.stringData as Record<string, string>) ?? {}) });
      }

      // PostgreSQL: a scratch server per StatefulSet, with exactly its args.
      const pgPort = {} as Record<DatabaseOwner, number>;
      for (const s of DATABASE_OWNERS) {
        const sts = byKind('StatefulSet').find((o) => o.metadata.name === `postgres-${s}`);
        if (!sts) throw new Error(`no StatefulSet postgres-${s}`);
        const c = podOf(sts).containers[0]!;
        const settings = commandLineSettings(`StatefulSet/postgres-${s}`, c.args ?? []);
        const cluster = await createServers([`postgres-${s}`], asServerOptions(settings));
        clusters.push(cluster);
        pgPort[s] = cluster.servers[0]!.port;
      }
      rabbitmqctl('add_vhost', vhost);
      rabbitmqctl('set_permissions', '-p', vhost, RABBIT.username || 'guest', '.*', '.*', '.*');
      const rabbit = new URL(RABBIT.toString());
      rabbit.pathname = `/${vhost}`;

      // Cluster addresses to this machine's: each postgres-<owner>:5432 to its scratch server (trust: any password
      // is taken), the broker's URL to the test vhost on the machine's RabbitMQ.
      const localize = (v: string) =>
        v
          .replace(
            /postgres-(order|inventory|payment|monitor):5432/g,
            (_m, s: DatabaseOwner) => `127.0.0.1:${pgPort[s]}`,
          )
          .replace(/amqp:\/\/[^@\s,]*@rabbitmq:5672[^\s,]*/g, rabbit.toString());

      /** The environment of a container as the kubelet would give it, localized; secret volumes written to files. */
      const envOf = (where: string, pod: Pod, c: Container): Record<string, string> => {
        const env: Record<string, string> = {};
        const lookup = (kind: string, name: string, key?: string) => {
          const d = data.get(`${kind}/${name}`);
          if (!d) throw new Error(`${where}: ${kind}/${name} does not exist`);
          if (key !== undefined && d[key] === undefined) throw new Error(`${where}: ${kind}/${name} has no ${key}`);
          return d;
        };
        for (const ef of c.envFrom ?? []) {
          if (ef.secretRef) Object.assign(env, lookup('Secret', ef.secretRef.name));
          if (ef.configMapRef) Object.assign(env, lookup('ConfigMap', ef.configMapRef.name));
        }
        const mounts = new Map<string, string>();
        for (const m of c.volumeMounts ?? []) {
          const vol = pod.volumes?.find((v) => v.name === m.name);
          if (!vol?.secret) continue;
          const dir = path.join(files, where.replace(/\W+/g, '_'), m.name);
          mkdirSync(dir, { recursive: true });
          const secret = lookup('Secret', vol.secret.secretName);
          const items = vol.secret.items ?? Object.keys(secret).map((k) => ({ key: k, path: k }));
          for (const it of items) writeFileSync(path.join(dir, it.path), localize(secret[it.key]!));
          mounts.set(m.mountPath, dir);
        }
        for (const e of c.env ?? []) {
          if (e.value !== undefined) env[e.name] = e.value;
          else if (e.valueFrom?.configMapKeyRef) {
            const r = e.valueFrom.configMapKeyRef;
            env[e.name] = lookup('ConfigMap', r.name, r.key)[r.key]!;
          } else if (e.valueFrom?.secretKeyRef) {
            const r = e.valueFrom.secretKeyRef;
            env[e.name] = lookup('Secret', r.name, r.key)[r.key]!;
          }
        }
        for (const [k, v] of Object.entries(env)) {
          let out = localize(v);
          for (const [mountPath, dir] of mounts)
            if (out.startsWith(`${mountPath}/`)) out = dir + out.slice(mountPath.length);
          env[k] = out;
        }
        // The machine's broker has no management plugin: setup applies its policies with rabbitmqctl instead.
        delete env.RABBITMQ_MANAGEMENT_URL;
        return env;
      };
      const start = (c: Container, env: Record<string, string>) =>
        startProcess('scripts/cli.ts', { LOG_LEVEL: 'info', ...env }, c.args ?? []);

      // The Job: its init containers (setup), then its containers (migrate), each to exit 0.
      const job = byKind('Job').find((o) => o.metadata.name === 'saga-migrate');
      if (!job) throw new Error('no Job saga-migrate');
      const jobPod = podOf(job);
      for (const c of [...(jobPod.initContainers ?? []), ...jobPod.containers]) {
        const p = start(c, envOf(`Job/saga-migrate ${c.name}`, jobPod, c));
        const { code } = await p.exited;
        if (code !== 0) throw new Error(`Job/saga-migrate ${c.name} exited with ${code}:\n${p.output()}`);
      }

      // The relay and every Deployment, each on a free port, ready on its readiness probe's path.
      const deployments = byKind('Deployment');
      expect(deployments.map((d) => d.metadata.name).sort()).toEqual(
        ['inventory', 'monitor', 'order', 'payment', 'relay'].sort(),
      );
      const probes: { name: string; url: string; p: Running }[] = [];
      for (const d of deployments) {
        const pod = podOf(d);
        const c = pod.containers.find((x) => x.args?.length)!;
        const env = envOf(`Deployment/${d.metadata.name}`, pod, c);
        const http = c.ports?.find((p) => p.name === 'http');
        const portVar = Object.keys(env).find((k) => env[k] === String(http?.containerPort) && /PORT$/.test(k));
        if (!http || !portVar) throw new Error(`Deployment/${d.metadata.name}: no http port set in its environment`);
        const probe = c.readinessProbe?.httpGet;
        if (!probe) throw new Error(`Deployment/${d.metadata.name}: no readiness probe`);
        const port = await freePort();
        env[portVar] = String(port);
        // The admin listener too, where the Deployment has one (its own port variable, its own free port).
        const admin = c.ports?.find((p) => p.name === 'admin');
        const adminVar = Object.keys(env).find((k) => env[k] === String(admin?.containerPort) && /PORT$/.test(k));
        if (admin && !adminVar) throw new Error(`Deployment/${d.metadata.name}: no admin port set in its environment`);
        if (adminVar) env[adminVar] = String(await freePort());
        const p = start(c, env);
        running.push(p);
        probes.push({ name: d.metadata.name, url: `http://127.0.0.1:${port}${probe.path}`, p });
      }
      for (const { name, url, p } of probes) {
        await waitUntil(
          async () => {
            if (p.child.exitCode !== null) throw new Error(`${name} exited with ${p.child.exitCode}:\n${p.output()}`);
            return (await fetch(url)).ok;
          },
          { timeoutMs: 60_000, intervalMs: 250, message: `${name} ready on ${url}` },
        ).catch((err: unknown) => {
          throw new Error(`${String(err)}\n${p.output().slice(-3000)}`, { cause: err });
        });
      }
    },
  );
});
