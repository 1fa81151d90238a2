/**
 * deploy/ as an operator relies on it: the manifests pass the Kubernetes and KEDA schemas, and what they say
 * agrees with Conveyor itself (its configuration defaults and schema, its handler group naming, its image, its
 * metric list), so that a change on either side that breaks a deployment fails here.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { budgetProblem, mainThreadFlagsFor } from '../../src/config/memory-budget.ts';
import type { ConveyorConfig } from '../../src/config/schema.ts';
import { discoverHandlers, type HandlerSpec } from '../../src/handlers/discover.ts';
import { Instrumentation } from '../../src/lanes/instrumentation.ts';
import { ConveyorMetrics } from '../../src/ops/metrics.ts';
import { dashboardExpressions, deployProblems, manifestProblems, metricNamesIn, readKnownMetrics } from '../../deploy/validate.ts';

// The example handler files import 'conveyor' (the package's own name, which resolves to dist/): serve the
// sources instead, so this test needs no build.
vi.mock('conveyor', () => import('../../src/index.ts'));

const ROOT = join(import.meta.dirname, '../..');
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'kubernetes');

type Obj = Record<string, any>;

function manifests(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((d) => d.toJS() as Obj);
}
function manifest(file: string, kind: string): Obj {
  const found = manifests(file).filter((m) => m['kind'] === kind);
  expect(found, `${file} holds one ${kind}`).toHaveLength(1);
  return found[0]!;
}

const configMap = manifest('configmap.yaml', 'ConfigMap');
const secret = manifest('secret.example.yaml', 'Secret');
const service = manifest('service.yaml', 'Service');
const workloads = { Deployment: manifest('deployment.yaml', 'Deployment'), StatefulSet: manifest('statefulset.yaml', 'StatefulSet') };
const defaults = loadConfig({ env: {} });

/** Literal `value`s of a container's env (downward-API and secret references resolve only in the cluster). */
function literalEnv(container: Obj): Record<string, string> {
  return Object.fromEntries((container['env'] as Obj[]).filter((e) => typeof e['value'] === 'string').map((e) => [e['name'], e['value']]));
}

/** Conveyor's configuration as a pod of `workload` resolves it: the ConfigMap's file plus the container's env. */
function podConfig(workload: Obj): ConveyorConfig {
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-deploy-'));
  try {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, configMap['data']['config.yaml']);
    return loadConfig({ file, env: literalEnv(container(workload)) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function container(workload: Obj): Obj {
  const containers = workload['spec']['template']['spec']['containers'] as Obj[];
  expect(containers).toHaveLength(1);
  return containers[0]!;
}

function envVar(workload: Obj, name: string): Obj {
  const found = (container(workload)['env'] as Obj[]).find((e) => e['name'] === name);
  expect(found, `env ${name}`).toBeDefined();
  return found!;
}

/** The port number a probe's port (a name or a number) stands for. */
function portNumber(workload: Obj, port: string | number): number {
  if (typeof port === 'number') return port;
  const named = (container(workload)['ports'] as Obj[]).find((p) => p['name'] === port);
  expect(named, `container port named ${port}`).toBeDefined();
  return named!['containerPort'] as number;
}

describe('deploy/ validation (node deploy/validate.ts, run by npm run lint)', () => {
  it('finds no problem: every manifest matches the Kubernetes or KEDA schema, every queried metric is known', () => {
    expect(deployProblems(DEPLOY)).toEqual([]);
  });

  it('reports a misspelt field, a value of the wrong type, an unknown kind and broken YAML', () => {
    const deployment = readFileSync(join(K8S, 'deployment.yaml'), 'utf8');
    expect(manifestProblems(deployment.replace('terminationGracePeriodSeconds:', 'terminationGracePeriodSecond:'), 'd.yaml')).toEqual([
      'd.yaml: Deployment conveyor: /spec/template/spec/terminationGracePeriodSecond: not a field of apps/v1 Deployment',
    ]);
    expect(manifestProblems(deployment.replace('replicas: 2', 'replicas: two'), 'd.yaml')).toEqual([
      'd.yaml: Deployment conveyor: /spec/replicas: must be integer',
    ]);
    const scaledObject = readFileSync(join(K8S, 'keda-kafka-scaledobject.yaml'), 'utf8');
    expect(manifestProblems(scaledObject.replace('lagThreshold: "1000"', 'lagThreshold: 1000'), 's.yaml')).toEqual([
      's.yaml: ScaledObject conveyor: /spec/triggers/0/metadata/lagThreshold: must be string',
    ]);
    expect(manifestProblems(scaledObject.replace('maxReplicaCount:', 'maxReplicas:'), 's.yaml')).toEqual([
      's.yaml: ScaledObject conveyor: /spec/maxReplicas: not a field of keda.sh/v1alpha1 ScaledObject',
    ]);
    expect(manifestProblems('apiVersion: v1\nkind: Frobnicator\nmetadata: { name: x }\n', 'f.yaml')[0]).toMatch(/^f\.yaml: no schema for apiVersion v1 kind Frobnicator/);
    expect(manifestProblems('kind: [Deployment\n', 'b.yaml')[0]).toMatch(/^b\.yaml: not valid YAML/);
  });
});

describe.each(Object.entries(workloads))('the %s', (kind, workload) => {
  const config = podConfig(workload);
  const pod = workload['spec']['template']['spec'] as Obj;
  const c = container(workload);

  // Worst case, a handler that never returns: the shutdown deadline runs out, then the runner commits and closes
  // its consumers (leaving the group does not wait for stuck work a second time); 10 s covers commit and close.
  it('gives a stopping pod the shutdown deadline plus 10 s to commit and leave the group', () => {
    const graceMs = (pod['terminationGracePeriodSeconds'] as number) * 1000;
    expect(config.shutdown.deadlineMs).toBeGreaterThanOrEqual(defaults.shutdown.deadlineMs);
    expect(graceMs).toBeGreaterThanOrEqual(config.shutdown.deadlineMs + 10_000);
  });

  it('runs the runner with the ConfigMap configuration, which Conveyor accepts', () => {
    const mount = (c['volumeMounts'] as Obj[]).find((m) => m['name'] === 'config')!;
    const volume = (pod['volumes'] as Obj[]).find((v) => v['name'] === 'config')!;
    expect(volume['configMap']['name']).toBe(configMap['metadata']['name']);
    expect(c['args']).toEqual(['node', 'dist/runner.js', '--config', `${mount['mountPath']}/config.yaml`]);
    expect(config.kafka.environment).toBe('prod');
  });

  it('probes /health/live and /health/ready on the ops port Conveyor listens on', () => {
    expect(config.ops.port).toBe(defaults.ops.port);
    expect(config.ops.host).toBe('0.0.0.0');
    for (const [probe, path] of [['startupProbe', '/health/live'], ['livenessProbe', '/health/live'], ['readinessProbe', '/health/ready']] as const) {
      expect(c[probe]['httpGet']['path'], probe).toBe(path);
      expect(portNumber(workload, c[probe]['httpGet']['port']), probe).toBe(config.ops.port);
    }
    expect(pod['containers'][0]['ports']).toContainEqual(expect.objectContaining({ containerPort: config.ops.port }));
  });

  it('sets POD_NAME from the pod name (downward API) for static membership', () => {
    expect(envVar(workload, 'POD_NAME')['valueFrom']).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
  });

  it('requests CPU and memory, limits memory, and sizes the worker pool from the CPU request', () => {
    expect(c['resources']['requests']).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
    expect(c['resources']['limits']['memory']).toEqual(expect.any(String));
    expect(envVar(workload, 'CONVEYOR_POOL_SIZE')['valueFrom']['resourceFieldRef']).toMatchObject({ resource: 'requests.cpu', divisor: '1' });
  });

  it('sets a memory budget a quarter below the memory limit, the main-thread heap flags it derives, and requests less than the limit', () => {
    const mebibytes = (q: string): number => {
      const m = /^(\d+)(Mi|Gi)$/.exec(q);
      expect(m, `memory quantity ${q}`).not.toBeNull();
      return Number(m![1]) * (m![2] === 'Gi' ? 1024 : 1);
    };
    const budget = config.memory.budgetMb;
    expect(budget).toBeGreaterThan(0);
    // the CPU request sizes the pool: the budget must afford that many worker threads
    expect(budgetProblem(budget, Math.ceil(Number(c['resources']['requests']['cpu'])))).toBeUndefined();
    expect(mebibytes(c['resources']['limits']['memory'])).toBeGreaterThanOrEqual(budget * 1.25);
    expect(mebibytes(c['resources']['requests']['memory'])).toBeLessThan(mebibytes(c['resources']['limits']['memory']));
    expect(literalEnv(c)['NODE_OPTIONS']).toBe(mainThreadFlagsFor(budget).join(' '));
  });

  it('takes the secrets from the Secret, by keys the example Secret has', () => {
    for (const name of ['AMQP_URL', 'KAFKA_SASL_PASSWORD']) {
      const ref = envVar(workload, name)['valueFrom']['secretKeyRef'] as Obj;
      expect(ref['name']).toBe(secret['metadata']['name']);
      expect(Object.keys(secret['stringData'])).toContain(ref['key']);
    }
  });

  it('the image sets the default budget and the main-thread heap flags it derives', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const budget = Number(/^ENV CONVEYOR_MEMORY_BUDGET_MB=(\d+)$/m.exec(dockerfile)?.[1]);
    expect(budget).toBe(defaults.memory.budgetMb);
    expect(/^ENV NODE_OPTIONS="([^"]*)"$/m.exec(dockerfile)?.[1]).toBe(mainThreadFlagsFor(budget).join(' '));
  });

  it('runs as the image user (Dockerfile USER) on a read-only root file system', () => {
    const user = /^USER\s+(\d+):(\d+)/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect(user).not.toBeNull();
    expect(pod['securityContext']).toMatchObject({ runAsNonRoot: true, runAsUser: Number(user![1]), runAsGroup: Number(user![2]) });
    expect(c['securityContext']).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  });

  it('is found by the Service and the PodDisruptionBudget', () => {
    const labels = workload['spec']['template']['metadata']['labels'] as Obj;
    expect(labels).toMatchObject(workload['spec']['selector']['matchLabels']);
    expect(labels).toMatchObject(service['spec']['selector']);
    expect(labels).toMatchObject(manifest('pdb.yaml', 'PodDisruptionBudget')['spec']['selector']['matchLabels']);
    expect(service['spec']['ports']).toContainEqual(expect.objectContaining({ port: config.ops.port, targetPort: 'ops' }));
    if (kind === 'StatefulSet') expect(workload['spec']['serviceName']).toBe(service['metadata']['name']);
  });
});

describe('Deployment and StatefulSet', () => {
  it('run the same pod', () => {
    expect(workloads.StatefulSet['spec']['template']).toEqual(workloads.Deployment['spec']['template']);
  });
});

describe('the toolbox pod (cli-pod.yaml)', () => {
  const cli = manifest('cli-pod.yaml', 'Pod');
  const workload = workloads.Deployment;

  it('has the image, configuration and secrets of the workload, and joins no group', () => {
    const c = cli['spec']['containers'][0] as Obj;
    expect(c['image']).toBe(container(workload)['image']);
    expect(cli['spec']['volumes']).toContainEqual({ name: 'config', configMap: { name: configMap['metadata']['name'] } });
    expect(c['volumeMounts']).toContainEqual(expect.objectContaining({ name: 'config', mountPath: '/etc/conveyor' }));
    for (const name of ['AMQP_URL', 'KAFKA_SASL_PASSWORD']) expect(c['env']).toContainEqual(envVar(workload, name));
    expect(c['args']).toEqual(['sleep', 'infinity']);
    expect((c['env'] as Obj[]).map((e) => e['name'])).not.toContain('POD_NAME');
  });

  it('is not selected by the Service, the PDB or the workload', () => {
    const labels = cli['metadata']['labels'] as Obj;
    for (const selector of [service['spec']['selector'], workload['spec']['selector']['matchLabels']] as Obj[]) {
      expect(Object.entries(selector).every(([k, v]) => labels[k] === v)).toBe(false);
    }
  });
});

describe('autoscaling', () => {
  const config = podConfig(workloads.Deployment);
  // the example handler files the image ships, read with the ConfigMap's configuration
  let handlers: HandlerSpec[] = [];
  beforeAll(async () => {
    handlers = await discoverHandlers(join(ROOT, 'handlers'), config);
  });
  const deploymentName = workloads.Deployment['metadata']['name'] as string;

  it('KEDA scales on the lag of consumer groups the handler files get by default naming, on the configured brokers', () => {
    const kafkaHandlers = handlers.filter((h) => h.broker === 'kafka');
    const scaledObject = manifest('keda-kafka-scaledobject.yaml', 'ScaledObject');
    expect(scaledObject['spec']['scaleTargetRef']).toMatchObject({ kind: 'Deployment', name: deploymentName });
    const triggers = scaledObject['spec']['triggers'] as Obj[];
    expect(triggers.length).toBeGreaterThan(0);
    for (const t of triggers) {
      expect(t['type']).toBe('kafka');
      const m = t['metadata'] as Obj;
      const handler = kafkaHandlers.find((h) => h.topics.includes(m['topic']));
      expect(handler, `a handler file consumes ${m['topic']}`).toBeDefined();
      expect(m['consumerGroup']).toBe(`${config.kafka.environment}.${config.kafka.group}.${handler!.name}`);
      expect(m['consumerGroup']).toBe(handler!.group);
      expect(m['bootstrapServers']).toBe(config.kafka.bootstrapServers);
      expect(m['offsetResetPolicy']).toBe(config.kafka.autoOffsetReset);
      expect(Number(m['lagThreshold'])).toBeGreaterThan(0);
    }
  });

  it('KEDA scales on the length of a queue a handler file consumes, connecting with the Secret AMQP_URL', () => {
    const queues = handlers.filter((h) => h.broker === 'rabbitmq').map((h) => h.queue!.name);
    const scaledObject = manifest('keda-rabbitmq-scaledobject.yaml', 'ScaledObject');
    const auth = manifest('keda-rabbitmq-scaledobject.yaml', 'TriggerAuthentication');
    expect(scaledObject['spec']['scaleTargetRef']).toMatchObject({ kind: 'Deployment', name: deploymentName });
    const [trigger] = scaledObject['spec']['triggers'] as Obj[];
    expect(trigger).toMatchObject({ type: 'rabbitmq', authenticationRef: { name: auth['metadata']['name'] }, metadata: { mode: 'QueueLength' } });
    expect(queues).toContain(trigger!['metadata']['queueName']);
    expect(auth['spec']['secretTargetRef']).toEqual([{ parameter: 'host', name: secret['metadata']['name'], key: 'AMQP_URL' }]);
  });

  it('the HPA scales on the external metric the prometheus-adapter rule serves, for a handler group', () => {
    const hpa = manifest('hpa.yaml', 'HorizontalPodAutoscaler');
    const adapter = parseYaml(manifest('prometheus-adapter-rules.yaml', 'ConfigMap')['data']['config.yaml']) as Obj;
    const [rule] = adapter['externalRules'] as Obj[];
    const [metric] = hpa['spec']['metrics'] as Obj[];
    expect(hpa['spec']['scaleTargetRef']).toMatchObject({ kind: 'Deployment', name: deploymentName });
    expect(metric!['external']['metric']['name']).toBe(rule!['name']['as']);
    expect(metricNamesIn(rule!['seriesQuery'])).toEqual(['conveyor_consumer_lag']);
    expect(handlers.map((h) => h.group)).toContain(metric!['external']['metric']['selector']['matchLabels']['group']);
  });

  it('caps replicas at the largest partition count it names, never scaling to zero', () => {
    const kafka = manifest('keda-kafka-scaledobject.yaml', 'ScaledObject')['spec'] as Obj;
    const hpa = manifest('hpa.yaml', 'HorizontalPodAutoscaler')['spec'] as Obj;
    expect(kafka['minReplicaCount']).toBeGreaterThanOrEqual(1);
    expect(hpa['minReplicas']).toBeGreaterThanOrEqual(1);
    expect(hpa['maxReplicas']).toBe(kafka['maxReplicaCount']);
  });
});

describe('kustomization.yaml', () => {
  it('applies the config, one workload, the Service and the PDB, and no example Secret', () => {
    const k = parseYaml(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as Obj;
    expect(k['resources']).toEqual(['configmap.yaml', 'deployment.yaml', 'service.yaml', 'pdb.yaml']);
  });
});

describe('the Grafana dashboard', () => {
  const known = readKnownMetrics(readFileSync(join(DEPLOY, 'grafana/metrics.txt'), 'utf8'));
  const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana/conveyor-dashboard.json'), 'utf8')) as unknown;
  const used = new Set(dashboardExpressions(dashboard).flatMap(metricNamesIn).map((n) => n.replace(/_(bucket|sum|count)$/, '')));

  it('metrics.txt lists exactly the metrics Conveyor registers, with their types', async () => {
    const none = () => [];
    const metrics = new ConveyorMetrics(new Instrumentation(), {
      handlers: [],
      readings: { lanes: none, pool: () => undefined, circuits: none, brokers: none, assignments: none },
      defaultMetrics: false,
    });
    const registered = (await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]);
    expect(Object.fromEntries(registered)).toEqual(Object.fromEntries(known));
  });

  it('queries only metrics of deploy/grafana/metrics.txt', () => {
    expect([...used].filter((name) => !known.has(name))).toEqual([]);
  });

  it('shows every metric of the list', () => {
    expect([...known.keys()].filter((name) => !used.has(name))).toEqual([]);
  });
});
